"""Tests of the hub's storage layer."""
