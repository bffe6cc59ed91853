"""Integration tests of the hub against the real services."""
