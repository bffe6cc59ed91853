"""The hub's branch of the exception tree."""

from protocol.errors import OutpostError


class HubError(OutpostError):
    """Root of the hub's errors."""
