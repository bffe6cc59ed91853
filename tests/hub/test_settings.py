"""Hub settings: embedded defaults, env over file, one clear line per bad key."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.errors import HubConfigError
from hub.settings import load_hub_settings
from outpost.cli import app


def test_defaults_are_the_embedded_mode(tmp_path: Path) -> None:
    settings = load_hub_settings(None)
    assert (settings.bus.kind, settings.broker.kind) == ("memory", "embedded")
    assert settings.database.url.startswith("sqlite+aiosqlite:///")


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[bus]\nkind = "kafka"\nbootstrap = "file:9092"\n')
    monkeypatch.setenv("OUTPOST_HUB_BUS__BOOTSTRAP", "env:9092")
    settings = load_hub_settings(path)
    assert (settings.bus.kind, settings.bus.bootstrap) == ("kafka", "env:9092")


def test_bad_values_name_file_key_and_allowed(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[bus]\nkind = "rabbit"\n[worker]\ngrup = "x"\n')
    with pytest.raises(HubConfigError) as info:
        load_hub_settings(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: bus.kind: Input should be 'memory' or 'kafka' (got 'rabbit')"
    assert lines[1].startswith(f"{path}: worker.grup: unknown key")


def test_hub_serve_with_a_bad_config_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text("port = -1\n")
    result = CliRunner().invoke(app, ["hub", "serve", "--config", str(path)])
    assert result.exit_code == 2
    assert "port" in result.output


def test_embedded_broker_refuses_a_split_role(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(f'data_dir = "{tmp_path}"\n')
    result = CliRunner().invoke(app, ["hub", "serve", "--config", str(path), "--role", "ingest"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "embedded MQTT broker lives inside a single hub process" in message
    assert '[broker] kind = "external"' in message


def test_embedded_broker_on_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "hub.toml"
        path.write_text(f'data_dir = "{tmp_path}"\n[broker]\nurl = "mqtt://127.0.0.1:{port}"\n')
        result = CliRunner().invoke(app, ["hub", "serve", "--config", str(path)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in " ".join(result.output.split())
