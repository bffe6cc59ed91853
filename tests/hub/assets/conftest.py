"""The auth tests' SQLite hub fixture, for the asset tests."""

from tests.hub.auth.conftest import hub

__all__ = ["hub"]
