"""The agent's branch of the exception tree."""

from protocol.errors import OutpostError


class AgentError(OutpostError):
    """Root of the edge agent's errors."""

    exit_code = 1


class ConfigError(AgentError):
    """The settings file or environment is invalid; the message names file, key and allowed."""

    exit_code = 2


class NotBuiltError(AgentError):
    """A command or feature that is planned but not built yet."""
