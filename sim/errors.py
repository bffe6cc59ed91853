"""The simulator's branch of the exception tree."""

from protocol.errors import OutpostError


class SimError(OutpostError):
    """Root of the simulator's errors."""
