"""Starting and stopping the project's own processes (hub roles, simulators) from another.

Example:
    >>> import subprocess, sys
    >>> proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    >>> stop_process(proc, grace_s=5)
    >>> proc.returncode is not None
    True
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any


def stop_process(
    proc: subprocess.Popen[Any], *, sig: signal.Signals = signal.SIGTERM, grace_s: float = 15.0
) -> None:
    """Send `sig`, wait up to `grace_s`, then kill; a no-op when it has already exited."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


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
