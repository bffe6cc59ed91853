"""Real parts for agent integration tests: a private Mosquitto, agents, a broker observer.

The hub itself is the real one (`tests/integration/hubrig.py`, the `real_hub` fixture):
the agents' rows leave their outbox only because it stored them and sent the watermark
back. `BrokerObserver` is the test's passive view of what an agent published.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from protocol import (
    Channel,
    Envelope,
    ProtocolError,
    decode_envelope,
)

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_CTRL = "/usr/bin/mosquitto_ctrl"
DYNSEC_PLUGIN = next(
    iter(sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so"))),
    "/usr/lib/mosquitto_dynamic_security.so",
)
"""Mosquitto's dynamic-security plugin (Debian installs it in the multiarch directory)."""
EDGE_AGENT = str(Path(sys.executable).parent / "edge-agent")


def free_port() -> int:
    """A free TCP port below Linux's ephemeral range (32768+).

    A broker that a test stops and restarts must not sit on an ephemeral port: while it
    is down, the agent's reconnect attempts to that port can pick it as their own local
    port and connect to themselves (TCP self-connect), and the broker cannot bind again.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port between 20000 and 32000")


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `predicate` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


async def until(predicate: Any, limit_s: float, what: str, interval: float = 0.05) -> None:
    """`wait_for` for async tests: poll without blocking the event loop."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        await asyncio.sleep(interval)


class PrivateBroker:
    """A real Mosquitto on its own port, that a test may stop, kill and restart."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        dynsec_admin: tuple[str, str] | None = None,
    ) -> None:
        """`users`: a password file; `dynsec_admin` (user, password): the dynamic-security
        plugin, initialised with that admin client (`mosquitto_ctrl dynsec init`)."""
        self.workdir, self.port = workdir, free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            "set_tcp_nodelay true",
            f"log_dest file {workdir / 'mosquitto.log'}",
            "user root" if os.geteuid() == 0 else "",
        ]
        if users:
            pwfile = workdir / "passwd"
            pwfile.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        elif dynsec_admin:
            state = workdir / "dynamic-security.json"
            init = [MOSQUITTO_CTRL, "dynsec", "init", str(state), *dynsec_admin]
            subprocess.run(init, check=True, capture_output=True)
            lines += [
                "allow_anonymous false",
                f"plugin {DYNSEC_PLUGIN}",
                f"plugin_opt_config_file {state}",
            ]
        else:
            lines.append("allow_anonymous true")
        (workdir / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self._proc = subprocess.Popen([MOSQUITTO, "-c", str(self.workdir / "mosquitto.conf")])
        wait_for(self._accepting, 10, f"mosquitto on port {self.port}")

    def _accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Graceful stop (SIGTERM)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Crash: SIGKILL, losing everything it held in memory."""
        self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)
            self._proc.wait(10)
        self._proc = None


class BrokerObserver:
    """Times each message on `filters` as the broker hands it out, and does nothing else.

    A paho client on its own network thread that only stamps the arrival time and keeps
    the raw payload; decoding waits until `envelopes()` is asked. So a busy machine
    delays the stamp by a thread switch, not by a backlog of decodes. It reconnects and
    resubscribes within half a second of a broker restart. Next to a real hub it is the
    test's view of what an agent published; it confirms nothing.

    Example:
        with BrokerObserver(url, [topic(device, Channel.EVENTS)], "obs-1") as observer:
            ...
            events = observer.bodies(device, Channel.EVENTS)
    """

    def __init__(self, url: str, filters: str | Sequence[str], client_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        subscriptions = [(f, 1) for f in ([filters] if isinstance(filters, str) else filters)]
        self.arrivals: list[tuple[float, bytes]] = []
        self._decoded: list[tuple[float, Envelope]] = []
        self._seen = 0
        host, port = url.removeprefix("mqtt://").split(":")
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self._client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self._client.on_connect = lambda c, *_: c.subscribe(subscriptions)
        self._client.on_message = lambda _c, _u, m: self.arrivals.append((time.time(), m.payload))
        self._client.connect_async(host, int(port))
        self._client.loop_start()

    def __enter__(self) -> BrokerObserver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def envelopes(self) -> list[tuple[float, Envelope]]:
        """(arrival time, envelope) of every valid message so far, in arrival order."""
        arrived = self.arrivals[self._seen :]
        self._seen += len(arrived)
        for at, payload in arrived:
            with contextlib.suppress(ProtocolError):
                self._decoded.append((at, decode_envelope(payload)))
        return list(self._decoded)

    def bodies(self, device: str, kind: Channel) -> list[Any]:
        """The bodies of `device`'s `kind` envelopes so far, in arrival order."""
        return [e.body for _at, e in self.envelopes() if e.device == device and e.kind == kind]


def agent_config(
    path: Path, *, device: str, data_dir: Path, mqtt_url: str, **sections: dict[str, Any]
) -> Path:
    """Write an agent TOML config (JSON-compatible values are valid TOML inline values)."""
    base: dict[str, dict[str, Any]] = {
        "device": {"id": device, "data_dir": str(data_dir)},
        "mqtt": {"url": mqtt_url, "connect_timeout_s": 3},
        "uplink": {
            "resend_timeout_s": 2,
            "backoff_initial_s": 0.1,
            "backoff_max_s": 1,
            "state_interval_s": 1,
        },
        "metrics": {"port": 0},
        "telemetry": {"batch_points": 1, "batch_delay_s": 0.05, "sources": []},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return orjson.dumps(value).decode()


class AgentProcess:
    """`edge-agent run` as a real process."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the agent in the background, logging to `log`."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [EDGE_AGENT, "run", "--config", str(self.config)], stdout=out, stderr=out
            )

    def kill(self) -> None:
        """kill -9."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def reported_running(self, data_dir: Path) -> bool:
        """The agent process wrote its status file (its loops are running)."""
        path = data_dir / "status.json"
        try:
            return self.proc is not None and orjson.loads(path.read_bytes())["pid"] == self.proc.pid
        except (OSError, ValueError, KeyError):
            return False

    def ensure_stopped(self) -> None:
        """Kill the agent if a failed test left it running."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM and wait for a clean exit; a stuck agent dumps its stacks into the log."""
        assert self.proc is not None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            self.kill()
            tail = self.log.read_text(errors="replace")[-6000:]
            raise AssertionError(f"agent did not stop within {timeout} s; log:\n{tail}") from None
