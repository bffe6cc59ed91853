"""The usage examples in hub.storage's docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "hub.storage.archive",
    "hub.storage.columns",
    "hub.storage.db",
    "hub.storage.errors",
    "hub.storage.migrate",
    "hub.storage.models",
    "hub.storage.repositories.rollups",
    "hub.storage.rows",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
