"""Tests of hub.alerts."""
