"""The usage examples in every package's docstrings run (one runner for the whole tree)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ["protocol", "edge_agent", "hub", "bench", "outpost", "sim", "training"]
SKIP = ("hub.storage.migrations",)  # Alembic's env.py runs migrations when imported
# Modules whose public interface is documented by runnable examples: they must keep some.
WITH_EXAMPLES = {
    "edge_agent.enroll",
    "edge_agent.files",
    "edge_agent.identity",
    "edge_agent.install",
    "edge_agent.steps",
    "edge_agent.systemd",
    "edge_agent.uninstall",
    "hub.assets.enrollment",
    "hub.assets.rules",
    "hub.audit.chain",
    "hub.auth.opaque",
    "hub.auth.policy",
    "hub.auth.principal",
    "hub.auth.ratelimit",
    "hub.auth.signing",
    "hub.auth.tokens",
    "hub.storage.archive",
    "hub.storage.columns",
    "hub.storage.db",
    "hub.storage.errors",
    "hub.storage.migrate",
    "hub.storage.models",
    "hub.storage.repositories.rollups",
    "hub.storage.rows",
}


def modules() -> list[str]:
    """Every importable module of our packages, except those that act on import."""
    names = []
    for package in PACKAGES:
        names.append(package)
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not info.name.startswith(SKIP):
                names.append(info.name)
    return names


@pytest.mark.parametrize("name", modules())
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if name in WITH_EXAMPLES:
        assert result.attempted > 0


def test_every_module_with_required_examples_exists() -> None:
    assert set(modules()) >= WITH_EXAMPLES
