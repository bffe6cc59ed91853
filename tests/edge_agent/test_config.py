"""`edge-agent config validate`: a good file says OK; a bad one is one message and exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner, Result

from edge_agent.cli import app
from edge_agent.config import AgentSettings, HostSource, OutboxSource, SyntheticSource

runner = CliRunner()

VALID = """\
[device]
id = "amr-7"
name = "AMR 7"

[mqtt]
url = "mqtts://broker.example.com:8883"
username = "amr-7"
password = "s3cret"

[outbox]
synchronous = "FULL"
"""


def validate(path: Path, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, ["config", "validate", "--config", str(path)], env=env)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_is_ok(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)

    result = validate(path)

    assert result.exit_code == 0, result.output
    assert result.stdout == f"OK: {path} (device amr-7, broker mqtts://broker.example.com:8883)\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            VALID.replace('"FULL"', '"FAST"'),
            ["outbox.synchronous", "'NORMAL'", "'FULL'", "'FAST'"],
            id="bad-enum",
        ),
        pytest.param(
            VALID.replace("username =", "usename ="),
            ["mqtt.usename", "unknown key"],
            id="unknown-key",
        ),
        pytest.param(
            VALID.replace('id = "amr-7"\n', ""),
            ["device.id", "required key is missing"],
            id="missing-device-id",
        ),
        pytest.param(VALID.replace("[outbox]", "[outbox"), ["not valid TOML"], id="not-toml"),
        pytest.param(
            VALID.replace('id = "amr-7"', 'id = "AMR 7"'),
            ["device.id", "[a-z0-9]"],
            id="bad-device-id",
        ),
    ],
)
def test_a_bad_file_is_one_message_naming_file_and_key(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = write(tmp_path, text)

    result = validate(path)

    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: ")
    for words in expected:
        assert words in lines[0]


def test_a_missing_file_is_exit_2_and_says_how_to_create_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"

    result = validate(path)

    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"{path}: no such file; run `edge-agent install` or pass --config"
    )


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    env = {"OUTPOST_AGENT_MQTT__URL": "mqtt://10.0.0.9:1883"}

    result = validate(path, env=env)

    assert result.exit_code == 0, result.output
    assert "broker mqtt://10.0.0.9:1883" in result.stdout


def test_a_bad_environment_value_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)

    result = validate(path, env={"OUTPOST_AGENT_OUTBOX__SYNCHRONOUS": "OFF"})

    assert result.exit_code == 2
    assert "outbox.synchronous" in result.stderr
    assert "'NORMAL' or 'FULL'" in result.stderr


def _documented_keys(model: type[BaseModel]) -> Iterator[str]:
    for name, info in model.model_fields.items():
        yield name
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _documented_keys(annotation)


def test_the_field_guide_documents_every_key() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "field-technician.md").read_text(
        encoding="utf-8"
    )
    sources = [HostSource, OutboxSource, SyntheticSource]
    keys = {*_documented_keys(AgentSettings), *(k for s in sources for k in _documented_keys(s))}
    sections = AgentSettings.model_fields.keys()
    missing = sorted(k for k in keys - sections if f"`{k}`" not in guide)
    missing += sorted(s for s in sections if f"### `[{s}]`" not in guide)
    assert missing == []
