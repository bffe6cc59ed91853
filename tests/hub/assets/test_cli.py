"""`outpost hub site add|list` and `outpost hub token create` on a SQLite hub."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from outpost.cli import app


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\nhost = "0.0.0.0"\n')
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["hub", *args, "--config", str(config)])


def test_token_create_prints_the_token_once_with_the_install_line(config: Path) -> None:
    assert run(config, "token", "create", "--site", "plant-a").exit_code == 1  # no such site
    added = run(config, "site", "add", "plant-a", "--name", "Plant A")
    assert added.exit_code == 0, added.output
    assert "plant-a" in run(config, "site", "list").output

    created = run(config, "token", "create", "--site", "plant-a", "--ttl", "30m")
    assert created.exit_code == 0, created.output
    token = re.search(r"^(oet_\S+)$", created.output, re.MULTILINE)
    assert token, created.output
    assert f"edge-agent install --hub http://HUB-ADDRESS:8080 --token {token[1]}" in created.output
    assert token[1] not in (config.parent / "data" / "hub.db").read_bytes().decode("latin-1")

    hub = run(config, "token", "create", "--site", "plant-a", "--hub", "https://hub.example/")
    assert "edge-agent install --hub https://hub.example --token oet_" in hub.output


def test_bad_input_exits_2(config: Path) -> None:
    assert run(config, "site", "add", "Plant A").exit_code == 2
    run(config, "site", "add", "plant-a")
    assert run(config, "token", "create", "--site", "plant-a", "--ttl", "9d").exit_code == 2
    no_group = run(config, "token", "create", "--site", "plant-a", "--group", "nope")
    assert no_group.exit_code == 2
    assert "has no group" in no_group.output
