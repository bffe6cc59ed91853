"""Starting and stopping the project's own processes (hub roles, simulators) from another.

Example:
    >>> import subprocess, sys
    >>> proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    >>> stop_process(proc, grace_s=5)
    >>> proc.returncode is not None
    True
    >>> sleeper = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    >>> parent = subprocess.Popen([sys.executable, "-c", sleeper], start_new_session=True)
    >>> stop_process(parent, grace_s=5, group=True)  # the child `sleep` goes too
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any


def stop_process(
    proc: subprocess.Popen[Any],
    *,
    sig: signal.Signals = signal.SIGTERM,
    grace_s: float = 15.0,
    group: bool = False,
) -> None:
    """Send `sig`, wait up to `grace_s`, then kill; a no-op when it has already exited.

    With `group` (a process started with `start_new_session=True`), the signal and the
    kill go to its whole process group, so its own children never outlive it.
    """
    if proc.poll() is None:
        _signal(proc, sig, group)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL, group)
            proc.wait(5)
    if group:  # children that ignored the signal their parent obeyed
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _signal(proc: subprocess.Popen[Any], sig: signal.Signals, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)


def wait_healthy(url: str, proc: subprocess.Popen[Any], *, timeout_s: float) -> None:
    """Wait until `GET url` answers 2xx while `proc` stays alive.

    Raises `ChildProcessError` when the process exits first, `TimeoutError` when the
    time is up.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ChildProcessError(f"exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - our own URL
                if 200 <= answer.status < 300:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"no answer from {url} within {timeout_s:g} s")
