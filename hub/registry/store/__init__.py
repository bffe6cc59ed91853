"""Where model artifacts are kept: a local directory (an S3-compatible store is not built)."""
