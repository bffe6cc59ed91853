"""The usage examples in protocol's docstrings run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import protocol

MODULES = ["protocol", *(f"protocol.{m.name}" for m in pkgutil.iter_modules(protocol.__path__))]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
