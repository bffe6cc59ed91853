"""The `outpost` command: mounts the CLIs of hub, simulator, training and benchmarks."""

__version__ = "0.1.0"
