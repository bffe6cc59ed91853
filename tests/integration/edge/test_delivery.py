"""The agent never loses what it committed: kill -9, broker outages, broker crashes, the cap.

Real Mosquitto, real `edge-agent run` processes and the real hub (ingest and worker
processes, Kafka, PostgreSQL): rows leave an agent's outbox only once this hub stored
them and sent the watermark back. The backlog drain also has a passive observer at the
broker, which times the live data there while the real hub confirms. Figures are
printed for the closing note (`pytest -s`).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from protocol import Channel, Envelope, PriorityClass, topic
from tests.integration.harness import (
    EDGE_AGENT,
    AgentProcess,
    BrokerObserver,
    PrivateBroker,
    agent_config,
    wait_for,
)
from tests.integration.hubrig import HubStack

OUTAGE_S = float(os.environ.get("OUTPOST_TEST_OUTAGE_S", "60"))
LIVE_P99_LIMIT_S = 5.0


def outbox_points(db: Path) -> set[tuple[str, float]]:
    """(boot, value) of every synthetic point still in the outbox file."""
    points = set()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        for (body,) in conn.execute("SELECT body FROM rows"):
            for point in json.loads(body).get("points", []):
                if point["metric"] == "synthetic.counter":
                    points.add((point["tags"]["boot"], point["value"]))
    return points


def depth(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM rows").fetchone()[0])


def data_depth(db: Path) -> int:
    """Rows not yet confirmed by the hub, but for `state`: an agent sends its state every
    couple of seconds and once more as it stops, so one may be in flight or left for the
    next start (it is not lost: the next run sends it)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM rows WHERE kind != 'state'").fetchone()[0])


def drain_remainder(
    agent: AgentProcess, cfg: Path, *, device: str, data: Path, mqtt_url: str
) -> None:
    """Restart the agent with no sources and let it empty its outbox, then stop it."""
    agent_config(cfg, device=device, data_dir=data, mqtt_url=mqtt_url)
    agent.start()
    wait_for(lambda: data_depth(data / "outbox.db") == 0, 60, "the outbox to drain")
    assert agent.terminate() == 0


@dataclass
class Rig:
    """One agent on a private broker that the test may stop, kill and restart."""

    broker: PrivateBroker
    device: str
    data: Path
    cfg: Path
    agent: AgentProcess


def private_rig(
    tmp_path: Path, name: str, *, start_broker: bool = True, **sections: dict[str, Any]
) -> Rig:
    broker = PrivateBroker(tmp_path / "broker")
    if start_broker:
        broker.start()
    data = tmp_path / "data"
    cfg = agent_config(
        tmp_path / "agent.toml", device=name, data_dir=data, mqtt_url=broker.url, **sections
    )
    return Rig(broker, name, data, cfg, AgentProcess(cfg, tmp_path / "agent.log"))


def assert_prefix_per_boot(values: list[tuple[str, str, int, float]]) -> dict[str, int]:
    """Each boot's counter values are 0..k with no gap: nothing committed was lost."""
    by_boot: dict[str, list[float]] = defaultdict(list)
    for _stream, boot, _seq, value in values:
        by_boot[boot].append(value)
    for boot, got in by_boot.items():
        assert sorted(got) == list(range(len(got))), f"boot {boot}: gap or duplicate"
    return {boot: len(v) for boot, v in by_boot.items()}


@pytest.mark.timeout(300)
def test_kill_9_during_enqueues_loses_nothing_committed(
    tmp_path: Path, mqtt_url: str, run_id: str, real_hub: Callable[[str], HubStack]
) -> None:
    device = f"chaos-{run_id}"
    data = tmp_path / "data"
    db = data / "outbox.db"
    synthetic = [{"type": "synthetic", "rate_hz": 500}]
    cfg = agent_config(
        tmp_path / "agent.toml",
        device=device,
        data_dir=data,
        mqtt_url=mqtt_url,
        telemetry={"sources": synthetic},
    )
    rng = random.Random(run_id)
    committed: set[tuple[str, float]] = set()
    hub = real_hub(mqtt_url)
    agent = AgentProcess(cfg, tmp_path / "agent.log")
    # 20 kills at random moments, the runs adding up to 26 s at 500 points/s: > 10,000 even
    # when a loaded machine makes each restart's first second slow.
    runs = [rng.uniform(0.2, 1.8) for _ in range(20)]
    for run_s in (26 * r / sum(runs) for r in runs):
        agent.start()
        wait_for(lambda: agent.reported_running(data), 20, "the agent to start")
        time.sleep(run_s)
        agent.kill()
        committed |= outbox_points(db)
    drain_remainder(agent, cfg, device=device, data=data, mqtt_url=mqtt_url)
    values = hub.telemetry(device)
    received = {(boot, value) for _s, boot, _q, value in values}
    assert committed <= received, f"{len(committed - received)} committed points lost"
    counts = assert_prefix_per_boot(values)
    assert hub.gaps(device) == {}, "a stream's watermark stops below a stored seq"
    total = sum(counts.values())
    print(f"\nkill -9 x20: {total} points committed and stored exactly once by the real hub")
    assert total >= 10_000


@pytest.mark.timeout(OUTAGE_S * 3 + 180)
def test_broker_outage_backlog_drains_behind_live_data(
    tmp_path: Path, run_id: str, real_hub: Callable[[str], HubStack]
) -> None:
    rig = private_rig(
        tmp_path,
        f"outage-{run_id}",
        telemetry={"sources": [{"type": "synthetic", "rate_hz": 200}]},
        # The product's default re-send timeout: with the harness's 2 s the agent would start a
        # round of re-sends whenever the hub, working through 12,000 rows, pauses that long.
        uplink={"drain_rate": 500, "resend_timeout_s": 30},
    )
    broker, device, data, cfg, agent = rig.broker, rig.device, rig.data, rig.cfg, rig.agent
    hub = real_hub(broker.url)
    # The real hub stores and confirms; a passive observer stamps each message's arrival at
    # the broker, where the agent's priority of live data over the backlog shows.
    observer = BrokerObserver(
        broker.url, topic(device, Channel.TELEMETRY), client_id=f"observer-{run_id}"
    )
    try:
        agent.start()
        time.sleep(3)
        broker.stop()
        time.sleep(OUTAGE_S)
        restored = time.time()
        broker.start()
        wait_for(lambda: depth(data / "outbox.db") < 400, OUTAGE_S * 2 + 60, "the drain")
        drained = time.time()
        time.sleep(2)
        assert agent.terminate() == 0
        drain_remainder(agent, cfg, device=device, data=data, mqtt_url=broker.url)
    finally:
        observer.close()
        agent.ensure_stopped()
        broker.kill()
    values = hub.telemetry(device)
    assert_prefix_per_boot(values)
    assert hub.gaps(device) == {}, "a stream's watermark stops below a stored seq"
    seen = observer.envelopes()
    first: dict[tuple[str, int], tuple[float, Envelope]] = {}  # a re-sent copy is not live
    for at, env in seen:
        first.setdefault((env.stream, env.seq), (at, env))
    # Live from a second after the observer was back on the restarted broker: what the agent
    # published before that, the broker dropped for want of a subscriber (the hub's ingest
    # too, if it was not back either), and the observer sees only the re-sent copy.
    back = min((at for at, _env in seen if at > restored), default=restored)
    live = sorted(
        at - env.body.points[0].ts.timestamp()  # type: ignore[union-attr]
        for at, env in first.values()
        if back + 1 < env.ts.timestamp() < drained
    )
    backlog = int(OUTAGE_S * 200)
    p99 = live[int(len(live) * 0.99) - 1] if live else float("nan")
    print(
        f"\noutage {OUTAGE_S:.0f} s at 200 msg/s: backlog ~{backlog} drained in "
        f"{drained - restored:.1f} s by the real hub; live p99 latency to the broker during "
        f"the drain {p99 * 1000:.0f} ms over {len(live)} live messages (observer back "
        f"{back - restored:.1f} s after the broker)"
    )
    # Live data kept flowing: at its own rate all through the drain, each message out
    # within seconds. One held behind the backlog would wait tens of seconds (the drain
    # takes 40-100 s here). With the hub's processes on the same two cores the CPU is
    # saturated, so the scheduler alone puts the p99 at 0.2-1.5 s; the responder, which
    # uses next to no CPU, gave 0.1 s.
    assert len(live) >= 0.8 * 200 * (drained - back - 1), "live data stopped flowing"
    assert p99 < LIVE_P99_LIMIT_S


@pytest.mark.timeout(180)
def test_broker_crash_after_puback_rows_are_resent(
    tmp_path: Path, run_id: str, real_hub: Callable[[str], HubStack]
) -> None:
    rig = private_rig(
        tmp_path,
        f"crash-{run_id}",
        telemetry={"sources": [{"type": "synthetic", "rate_hz": 100, "limit": 600}]},
        uplink={"resend_timeout_s": 5},
    )
    broker, device, data, agent = rig.broker, rig.device, rig.data, rig.agent
    hub = real_hub(broker.url)
    try:
        agent.start()
        time.sleep(4)
        hub.ingest.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        time.sleep(2)  # the broker acknowledged these to the agent; nobody stored them
        broker.kill()  # ... and the broker crashes, losing what it held
        broker.start()
        hub.ingest.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        wait_for(
            lambda: data_depth(data / "outbox.db") == 0 and len(hub.telemetry(device)) >= 600,
            120,
            "all 600 points",
        )
        assert agent.terminate() == 0
        values = hub.telemetry(device)
    finally:
        agent.ensure_stopped()
        broker.kill()
    assert assert_prefix_per_boot(values) == {values[0][1]: 600}


@pytest.mark.timeout(120)
def test_cap_drops_only_plain_telemetry_and_says_so(
    tmp_path: Path, run_id: str, real_hub: Callable[[str], HubStack]
) -> None:
    rig = private_rig(  # the broker is not started: the link is down
        tmp_path,
        f"cap-{run_id}",
        start_broker=False,
        telemetry={"sources": [{"type": "synthetic", "rate_hz": 2000}]},
        outbox={"cap_mb": 0.2},
        uplink={"state_interval_s": 0.2},
    )
    broker, device, cfg, agent = rig.broker, rig.device, rig.cfg, rig.agent
    agent.start()
    try:

        def dropped() -> dict[str, int]:
            out = subprocess.run(
                [EDGE_AGENT, "status", "--json", "--config", str(cfg)],
                capture_output=True,
                text=True,
                check=True,
            )
            return json.loads(out.stdout).get("outbox", {}).get("dropped", {})

        wait_for(lambda: dropped().get("telemetry", 0) > 100, 30, "telemetry drops")
        seen = dropped()
        assert seen.get("safety", 0) == 0
        assert seen.get("detections", 0) == 0
        broker.start()
        hub = real_hub(broker.url)

        def reported() -> bool:
            state = hub.state(device) or {}
            buffer = state.get("buffer") or {}
            return int((buffer.get("dropped") or {}).get(PriorityClass.TELEMETRY, 0)) > 0

        # The device's state (safety class, never dropped) reached the hub's database,
        # and it says how much plain telemetry the cap dropped.
        wait_for(reported, 60, "the drop counters in the state the hub stored")
    finally:
        agent.ensure_stopped()
        broker.kill()


@pytest.mark.timeout(60)
def test_wrong_credentials_exit_with_authentication_refused(tmp_path: Path, run_id: str) -> None:
    broker = PrivateBroker(tmp_path / "broker", users={"amr-1": "right-password"})
    broker.start()
    cfg = agent_config(
        tmp_path / "agent.toml",
        device=f"auth-{run_id}",
        data_dir=tmp_path / "data",
        mqtt_url=broker.url,
        mqtt={"username": "amr-1", "password": "wrong-password"},
    )
    try:
        done = subprocess.run(
            [EDGE_AGENT, "run", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        broker.kill()
    assert done.returncode != 0
    assert "authentication refused" in done.stderr
