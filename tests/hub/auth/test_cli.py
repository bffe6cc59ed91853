"""`outpost hub init`, `hub user add|passwd|list`, `hub audit verify` on a SQLite hub."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from outpost.cli import app

PASSWORD = "correct horse battery"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    return path


def run(config: Path, *args: str, stdin: str = f"{PASSWORD}\n") -> Result:
    return CliRunner().invoke(app, ["hub", *args, "--config", str(config)], input=stdin)


def test_init_creates_the_first_admin_once(config: Path) -> None:
    first = run(config, "init", "--password-stdin")
    assert first.exit_code == 0, first.output
    assert "created admin 'admin' (user 1)" in first.output
    assert "outpost hub user add" in first.output
    second = run(config, "init", "--username", "other", "--password-stdin")
    assert second.exit_code == 1
    assert "has users already" in second.output


def test_init_prompts_for_the_password_twice(config: Path) -> None:
    result = run(config, "init", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output


def test_bad_input_exits_2(config: Path) -> None:
    assert run(config, "init", "--password-stdin", stdin="short\n").exit_code == 2
    assert run(config, "init", "--username", "Not Valid", "--password-stdin").exit_code == 2
    assert run(config, "user", "add", "bob", "--role", "boss", "--password-stdin").exit_code == 2
    bad_site = run(
        config, "user", "add", "bob", "--role", "viewer", "--site", "A B", "--password-stdin"
    )
    assert bad_site.exit_code == 2
    scoped_admin = run(
        config, "user", "add", "bob", "--role", "admin", "--site", "a", "--password-stdin"
    )
    assert scoped_admin.exit_code == 2
    assert "admin cannot be limited to sites" in scoped_admin.output


def test_user_add_list_passwd(config: Path, tmp_path: Path) -> None:
    assert run(config, "init", "--password-stdin").exit_code == 0
    added = run(
        config,
        "user",
        "add",
        "olga",
        "--role",
        "operator",
        "--site",
        "plant-b",
        "--site",
        "plant-a",
        "--password-stdin",
    )
    assert added.exit_code == 0, added.output
    assert "operator, plant-a, plant-b" in added.output
    assert run(config, "user", "add", "olga", "--role", "viewer", "--password-stdin").exit_code == 1

    listed = run(config, "user", "list")
    assert listed.exit_code == 0
    lines = [line for line in listed.output.splitlines() if "olga" in line or "admin " in line]
    assert any("operator" in line and "plant-a, plant-b" in line for line in lines)

    before = _password_hash(tmp_path, "olga")
    changed = run(config, "user", "passwd", "olga", "--password-stdin", stdin="another long one\n")
    assert changed.exit_code == 0
    assert _password_hash(tmp_path, "olga") != before
    assert run(config, "user", "passwd", "nobody", "--password-stdin").exit_code == 1


def test_audit_verify_reports_an_intact_chain_then_a_deleted_row(
    config: Path, tmp_path: Path
) -> None:
    assert run(config, "init", "--password-stdin").exit_code == 0
    assert run(config, "user", "add", "olga", "--role", "viewer", "--password-stdin").exit_code == 0
    assert run(config, "user", "add", "vic", "--role", "viewer", "--password-stdin").exit_code == 0
    intact = run(config, "audit", "verify")
    assert intact.exit_code == 0
    assert intact.stdout.startswith("3 rows, chain intact; head 3:")
    head = intact.stdout.strip().rsplit(" ", 1)[1]
    assert run(config, "audit", "verify", "--anchor", head).exit_code == 0
    assert run(config, "audit", "verify", "--anchor", "3:nothex").exit_code == 2

    with closing(sqlite3.connect(tmp_path / "data" / "hub.db")) as db, db:
        db.execute("DROP TRIGGER audit_log_no_delete")
        db.execute("DELETE FROM audit_log WHERE id = 2")
    broken = run(config, "audit", "verify")
    assert broken.exit_code == 1
    assert "row 2 missing (deleted) before row 3" in " ".join(broken.output.split())


def _password_hash(tmp_path: Path, username: str) -> str:
    with closing(sqlite3.connect(tmp_path / "data" / "hub.db")) as db:
        row = db.execute(
            "SELECT password_hash FROM users WHERE username = ?", (username,)
        ).fetchone()
    return str(row[0])
