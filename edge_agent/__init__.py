"""The Outpost edge agent: detection, store-and-forward uplink, supervised control."""

__version__ = "0.1.0"
