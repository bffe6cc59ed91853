"""Fixtures every test package may use."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO

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
# it ends, a failure is named as it happens (not only in the summary a stopped run never
# prints), and a run terminated from outside (CI's overall limit) prints the tests still
# running and the slowest so far. A hung test is stopped by pytest-timeout (pyproject).
SLOW_TEST_S = 30.0
_durations: dict[str, float] = {}
_running: dict[str, float] = {}


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _running[nodeid] = time.monotonic()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration
    if report.failed:
        print(
            f"\n[failed] {report.nodeid} ({report.when}, {_elapsed():.0f} s into the run)",
            flush=True,
        )


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _running.pop(nodeid, None)
    took = _durations.get(nodeid, 0.0)
    if took >= SLOW_TEST_S:
        print(f"\n[slow] {took:.0f} s {nodeid} ({_elapsed():.0f} s into the run)", flush=True)


_started = time.monotonic()


def _elapsed() -> float:
    return time.monotonic() - _started


def _report_and_exit(signum: int, _frame: object) -> None:
    now = time.monotonic()
    running = [f"{now - since:8.1f} s {nodeid}" for nodeid, since in _running.items()]
    slowest = sorted(_durations.items(), key=lambda item: -item[1])[:30]
    lines = [f"{took:8.1f} s {nodeid}" for nodeid, took in slowest]
    print(
        f"\nterminated by signal {signum} after {_elapsed():.0f} s, {len(_durations)} tests run;"
        " still running:\n"
        + ("\n".join(running) or "    (none)")
        + "\nslowest so far:\n"
        + "\n".join(lines),
        file=sys.stderr,
        flush=True,
    )
    os._exit(128 + signum)


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _report_and_exit)


# The backstop behind pytest-timeout's `timeout` (pyproject): a test still running a minute
# after it ends every thread's stack, from C, into $OUTPOST_TEST_STACKS_DIR (one file per
# process, headed by the test), which deploy/dev/run-tests prints after the pass.
HUNG_AFTER_S = float(os.environ.get("OUTPOST_TEST_HUNG_AFTER_S", "660"))
_stacks: IO[str] | None = None


def _stacks_file() -> IO[str] | None:
    global _stacks
    folder = os.environ.get("OUTPOST_TEST_STACKS_DIR")
    if _stacks is None and folder:
        name = os.environ.get("PYTEST_XDIST_WORKER", "main")
        _stacks = open(Path(folder) / f"{name}-{os.getpid()}.txt", "w", encoding="utf-8")  # noqa: SIM115
    return _stacks


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    stacks = _stacks_file()
    if stacks is None:
        yield
        return
    stacks.seek(0)
    stacks.truncate()
    stacks.write(f"hung for {HUNG_AFTER_S:.0f} s, and ended: {item.nodeid}\n")
    stacks.flush()
    faulthandler.dump_traceback_later(HUNG_AFTER_S, exit=True, file=stacks)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _stacks is not None:
        _stacks.close()
