"""Benchmarks: each prints one JSON object with its ratio against a same-machine limit."""
