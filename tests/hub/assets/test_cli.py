"""`outpost hub site add|list|layout` and `outpost hub token create` on a SQLite hub."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from outpost.cli import app
from sim.layout import scenario_layout
from sim.scenario import default_scenario


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


def test_site_layout_sets_the_floor_plan_from_a_json_file(config: Path, tmp_path: Path) -> None:
    run(config, "site", "add", "plant-a")
    good = tmp_path / "layout.json"
    good.write_text(json.dumps(scenario_layout(default_scenario(2))))
    placed = run(config, "site", "layout", "plant-a", str(good))
    assert placed.exit_code == 0, placed.output
    assert "plant-a: layout 40 x 24 m, 11 zone(s), 7 spot(s)" in placed.output
    assert run(config, "site", "layout", "plant-z", str(good)).exit_code == 1  # no such site


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (None, "cannot read it"),
        ("{not json", "not JSON"),
        (
            '{"width_m": 40, "height_m": 24, "zones": [{"name": "a", "kind": "lava"}]}',
            "zones.0.kind",
        ),
        ('{"width_m": 40}', "height_m: required key is missing"),
    ],
)
def test_a_bad_layout_file_exits_2_naming_the_file(
    config: Path, tmp_path: Path, text: str | None, said: str
) -> None:
    run(config, "site", "add", "plant-a")
    file = tmp_path / "layout.json"
    if text is not None:
        file.write_text(text)
    refused = run(config, "site", "layout", "plant-a", str(file))
    assert refused.exit_code == 2
    flat = "".join(refused.output.split())  # the console wraps long lines anywhere
    assert f"{file}:" in flat
    assert "".join(said.split()) in flat
