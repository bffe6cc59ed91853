"""The usage examples in the install modules' docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "edge_agent.enroll",
    "edge_agent.files",
    "edge_agent.identity",
    "edge_agent.install",
    "edge_agent.steps",
    "edge_agent.systemd",
    "edge_agent.uninstall",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
