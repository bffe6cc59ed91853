"""The training pipeline's branch of the exception tree."""

from protocol.errors import OutpostError


class TrainingError(OutpostError):
    """Root of the training pipeline's errors."""
