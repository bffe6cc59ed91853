"""Fixtures every test package may use."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """A command run in-process (`hub serve` under CliRunner) points the root logger at
    INFO on stderr; the next test on the same worker must not inherit that."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.fixture(scope="session")
def tiny_yolo_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YOLOv8n ONNX export, trained for seconds on generated shapes (needs ultralytics)."""
    # ultralytics (the `train` extra, which `make setup` installs) is imported by the helper
    # first, which makes it offline and keeps its settings out of the home directory.
    from filelock import FileLock

    from tests.edge_agent.ultralytics_model import build_tiny_yolo_onnx

    # Built once per run: pytest-xdist workers share the parent of their base temp folders.
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    workdir, done = shared / "tiny-yolo", shared / "tiny-yolo.path"
    with FileLock(str(shared / "tiny-yolo.lock")):
        if not done.is_file():
            workdir.mkdir(exist_ok=True)
            done.write_text(str(build_tiny_yolo_onnx(workdir)), encoding="utf-8")
    return Path(done.read_text(encoding="utf-8"))


# Where the suite's time goes, even when CI stops it: a test that takes long says so as
# it ends, and a run terminated from outside (CI's overall limit) prints the slowest so far.
SLOW_TEST_S = 30.0
_durations: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    took = _durations.get(nodeid, 0.0)
    if took >= SLOW_TEST_S:
        print(f"\n[slow] {took:.0f} s {nodeid} ({_elapsed():.0f} s into the run)", flush=True)


_started = time.monotonic()


def _elapsed() -> float:
    return time.monotonic() - _started


def _report_and_exit(signum: int, _frame: object) -> None:
    slowest = sorted(_durations.items(), key=lambda item: -item[1])[:30]
    lines = [f"{took:8.1f} s {nodeid}" for nodeid, took in slowest]
    print(
        f"\nterminated by signal {signum} after {_elapsed():.0f} s, {len(_durations)} tests run;"
        " slowest so far:\n" + "\n".join(lines),
        file=sys.stderr,
        flush=True,
    )
    os._exit(128 + signum)


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _report_and_exit)
