"""Structured logs: JSON lines a machine can parse, the format chosen by option or environment."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edge_agent.cli import app as agent_app
from hub.cli import app as hub_app
from protocol.logs import LogFormatError, configure_logging, resolve_log_format
from sim.cli import app as sim_app

runner = CliRunner()
RFC3339_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """configure_logging replaces the root logger's handlers; give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(
    emit: Callable[[logging.Logger], None], *, role: str = "hub-api"
) -> list[dict[str, Any]]:
    """What `emit` logs, through a JSON root logger, parsed line by line."""
    out = io.StringIO()
    configure_logging(logging.INFO, "json", role=role, stream=out)
    emit(logging.getLogger("outpost.test"))
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_json_line_carries_the_documented_fields() -> None:
    [line] = json_lines(emit=lambda log: log.info("device %s online", "amr-7"), role="hub-ingest")
    assert line["msg"] == "device amr-7 online"
    assert line["level"] == "INFO"
    assert line["logger"] == "outpost.test"
    assert line["role"] == "hub-ingest"
    assert line["pid"] == os.getpid()
    assert RFC3339_MS_UTC.match(line["ts"]), line["ts"]
    assert "exc" not in line


def test_an_exception_comes_with_its_traceback() -> None:
    def publish() -> None:
        raise RuntimeError("broker gone")

    def emit(log: logging.Logger) -> None:
        try:
            publish()
        except RuntimeError:
            log.exception("publish failed")

    [line] = json_lines(emit=emit)
    assert line["level"] == "ERROR"
    assert line["msg"] == "publish failed"
    assert line["exc"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: broker gone" in line["exc"]


def test_extras_are_fields_and_what_json_cannot_hold_is_repr() -> None:
    def emit(log: logging.Logger) -> None:
        log.warning(
            "outbox full",
            extra={"device": "amr-7", "depth": 1200, "tags": ["a", 1], "path": Path("/x/o.db")},
        )
        log.info("odd", extra={"ratio": float("nan"), "role": "spoofed"})

    full, odd = json_lines(emit=emit, role="edge-agent")
    assert full["device"] == "amr-7"
    assert full["depth"] == 1200
    assert full["tags"] == ["a", 1]
    assert full["path"] == repr(Path("/x/o.db"))
    assert odd["ratio"] == "nan"  # NaN is not JSON; jq would refuse the line
    assert odd["role"] == "edge-agent"  # an extra never hides a core field


def test_text_keeps_the_old_format() -> None:
    out = io.StringIO()
    configure_logging("INFO", "text", role="sim", stream=out)
    logging.getLogger("sim.fleet").info("3 robots up")
    assert re.match(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO sim.fleet: 3 robots up$", out.getvalue()
    )


def test_configuring_twice_writes_each_line_once_and_honours_the_level() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", "json", role="hub-all", stream=first)
    configure_logging("WARNING", "json", role="hub-all", stream=second)
    log = logging.getLogger("outpost.test")
    log.info("hidden")
    log.warning("shown")
    assert first.getvalue() == ""
    assert [json.loads(line)["msg"] for line in second.getvalue().splitlines()] == ["shown"]


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        (None, {}, "text"),
        (None, {"OUTPOST_LOG_FORMAT": ""}, "text"),
        (None, {"OUTPOST_LOG_FORMAT": "json"}, "json"),
        (None, {"OUTPOST_LOG_FORMAT": " JSON "}, "json"),
        ("text", {"OUTPOST_LOG_FORMAT": "json"}, "text"),  # the option wins
        ("json", {"OUTPOST_LOG_FORMAT": "xml"}, "json"),  # a bad env var under an option is moot
    ],
)
def test_the_option_wins_over_the_environment(
    option: str | None, env: dict[str, str], expected: str
) -> None:
    assert resolve_log_format(option, environ=env) == expected


@pytest.mark.parametrize(
    ("option", "env", "message"),
    [
        ("xml", {}, "--log-format 'xml' is not one of text, json"),
        (
            None,
            {"OUTPOST_LOG_FORMAT": "yaml"},
            "OUTPOST_LOG_FORMAT 'yaml' is not one of text, json",
        ),
    ],
)
def test_a_bad_format_names_its_source_and_the_allowed_values(
    option: str | None, env: dict[str, str], message: str
) -> None:
    with pytest.raises(LogFormatError, match=re.escape(message)):
        resolve_log_format(option, environ=env)


@pytest.mark.parametrize(
    ("app", "args"),
    [
        (hub_app, ["serve"]),
        (agent_app, ["run"]),
        (sim_app, ["run", "--hub", "http://127.0.0.1:9"]),
    ],
    ids=["outpost hub serve", "edge-agent run", "outpost sim run"],
)
@pytest.mark.parametrize(
    ("extra_args", "env", "message"),
    [
        (["--log-format", "xml"], {}, "--log-format 'xml' is not one of text, json"),
        ([], {"OUTPOST_LOG_FORMAT": "xml"}, "OUTPOST_LOG_FORMAT 'xml' is not one of text, json"),
    ],
    ids=["option", "env"],
)
def test_each_command_refuses_a_bad_format_with_exit_2_before_starting(
    app: Any, args: list[str], extra_args: list[str], env: dict[str, str], message: str
) -> None:
    done = runner.invoke(app, [*args, *extra_args], env=env)
    assert done.exit_code == 2, done.output
    assert message in " ".join(done.output.split())


def test_the_default_handler_follows_stderr_so_a_closed_stand_in_breaks_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io
    import sys

    stand_in, later = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", stand_in)
    configure_logging("INFO", "text", role="sim")
    logging.getLogger("outpost.test").info("first")
    stand_in.close()  # as a test runner does with the stderr it lent a command
    monkeypatch.setattr(sys, "stderr", later)
    logging.getLogger("outpost.test").info("second")
    assert "second" in later.getvalue()
