"""DESIGN.md's import rule: `protocol` imports nothing of ours; the deployables import only
`protocol` (and themselves); only `outpost`, `bench` and `tests` may import several."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"protocol", "edge_agent", "hub", "sim", "training", "bench", "outpost"}
ALLOWED: dict[str, set[str]] = {
    "protocol": {"protocol"},
    "edge_agent": {"edge_agent", "protocol"},
    "hub": {"hub", "protocol"},
    "sim": {"sim", "protocol"},
    "training": {"training", "protocol"},
    "bench": OURS,
    "outpost": OURS,
}


def imported_packages(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a file, ours or not."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def violations(root: Path) -> list[str]:
    """Every import that breaks the rule, as `path:line: package imports other`."""
    found = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, name in imported_packages(path):
                if name in OURS and name not in allowed:
                    found.append(f"{path.relative_to(root)}:{line}: {package} imports {name}")
    return found


def test_the_tree_follows_the_import_rule() -> None:
    assert violations(ROOT) == []


@pytest.mark.parametrize(
    ("package", "source", "bad"),
    [
        ("protocol", "import hub.cli\n", "protocol imports hub"),
        ("edge_agent", "from hub.errors import HubError\n", "edge_agent imports hub"),
        ("hub", "def f():\n    import edge_agent\n", "hub imports edge_agent"),
        ("sim", "from training import x\n", "sim imports training"),
    ],
)
def test_the_checker_catches_a_violation(
    tmp_path: Path, package: str, source: str, bad: str
) -> None:
    for name in ALLOWED:
        (tmp_path / name).mkdir()
    (tmp_path / package / "mod.py").write_text(source, encoding="utf-8")
    assert [v.split(": ", 1)[1] for v in violations(tmp_path)] == [bad]


def test_the_umbrella_may_import_everything(tmp_path: Path) -> None:
    for name in ALLOWED:
        (tmp_path / name).mkdir()
    (tmp_path / "outpost" / "cli.py").write_text("import hub, sim, edge_agent\n", encoding="utf-8")
    assert violations(tmp_path) == []
