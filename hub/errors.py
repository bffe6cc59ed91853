"""The hub's branch of the exception tree."""

from protocol.errors import OutpostError


class HubError(OutpostError):
    """Root of the hub's errors."""


class HubConfigError(HubError):
    """The hub's settings are invalid; the message names file, key and allowed values."""

    exit_code = 2
