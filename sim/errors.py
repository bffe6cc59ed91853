"""The simulator's branch of the exception tree."""

from protocol.errors import OutpostError


class SimError(OutpostError):
    """Root of the simulator's errors."""


class ScenarioError(SimError):
    """A scenario that cannot be used; the message names the file, the key and what is allowed."""


class UnknownName(SimError):
    """A robot, camera or metric name the world does not have; the message lists those it has."""


class DatasetError(SimError):
    """A dataset cannot be written where asked (the output is a file, or a non-empty folder)."""
