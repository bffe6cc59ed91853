"""The auth tests' SQLite hub fixture, for the query tests."""

from tests.hub.auth.conftest import hub

__all__ = ["hub"]
