"""Commands from the hub: verified, acknowledged, dispatched; refusals say why."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from edge_agent.downlink import CommandExecutor, ReplayCache
from edge_agent.outbox import Outbox
from edge_agent.robot import NoRobot
from edge_agent.safety import SafetyStore, SafetySupervisor
from protocol import CommandType, encode
from protocol.commands import new_command
from protocol.models import EstopParams, OverrideParams, ReleaseParams, Waypoint
from protocol.signing import generate_private_key, sign

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HUB = generate_private_key()
DEVICE = "amr-1"


class Robot:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def stop(self) -> None:
        self.calls.append(("stop",))

    async def set_velocity(self, linear: float, angular: float, until: datetime) -> None:
        self.calls.append(("velocity", str(linear), str(angular), until.isoformat()))

    async def follow_path(self, waypoints: Sequence[Waypoint], speed: float) -> None:
        self.calls.append(("path", str(len(waypoints)), str(speed)))


def command(type_: CommandType, params: object, *, key=HUB, device=DEVICE, at=NOW) -> bytes:
    cmd = new_command(device, type_, params, issued_by="op", now=at, ttl=timedelta(seconds=30))  # type: ignore[arg-type]
    return encode(sign(cmd, key))


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    box = await Outbox.open(tmp_path / "outbox.db", device=DEVICE)
    try:
        yield box
    finally:
        await box.close()


def executor(
    tmp_path: Path, outbox: Outbox, robot: object, clock: list[datetime]
) -> CommandExecutor:
    return CommandExecutor(
        device_id=DEVICE,
        hub_key=HUB.public_key(),
        supervisor=SafetySupervisor(SafetyStore(tmp_path / "safety.json")),
        robot=robot,  # type: ignore[arg-type]
        outbox=outbox,
        replay=ReplayCache(tmp_path / "seen.json", lambda: clock[0]),
        clock=lambda: clock[0],
    )


def acks(db: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT body FROM rows WHERE kind = 'acks' ORDER BY id").fetchall()
    return [(orjson.loads(b)["status"], orjson.loads(b).get("reason")) for (b,) in rows]


async def test_estop_stops_the_robot_and_latches(tmp_path: Path, outbox: Outbox) -> None:
    robot, clock = Robot(), [NOW]
    ex = executor(tmp_path, outbox, robot, clock)
    await ex.command(command(CommandType.ESTOP, EstopParams(reason="test")))
    assert set(robot.calls) == {("stop",)}
    assert ex.supervisor.status.engaged
    assert acks(tmp_path / "outbox.db") == [("received", None), ("done", None)]

    await ex.command(
        command(CommandType.OVERRIDE, OverrideParams(linear=1, angular=0, duration_s=1))
    )
    assert set(robot.calls) == {("stop",)}, "nothing moves while the stop is latched"
    assert acks(tmp_path / "outbox.db")[-1] == ("failed", None)


async def test_estop_reaches_the_robot_before_anything_is_written(
    tmp_path: Path, outbox: Outbox
) -> None:
    written: list[bool] = []

    class Watching(Robot):
        async def stop(self) -> None:
            on_disk = [(tmp_path / "seen.json").exists(), (tmp_path / "safety.json").exists()]
            written.append(any(on_disk) or bool(acks(tmp_path / "outbox.db")))
            await super().stop()

    clock = [NOW]
    ex = executor(tmp_path, outbox, Watching(), clock)
    await ex.command(command(CommandType.ESTOP, EstopParams(reason="test")))
    assert written[0] is False, "the first stop waited for the replay cache, latch or acks"
    assert (tmp_path / "safety.json").exists()


async def test_release_then_override_moves_until_its_deadline(
    tmp_path: Path, outbox: Outbox
) -> None:
    robot, clock = Robot(), [NOW]
    ex = executor(tmp_path, outbox, robot, clock)
    await ex.command(command(CommandType.ESTOP, EstopParams()))
    await ex.command(command(CommandType.RELEASE, ReleaseParams(reason="clear")))
    await ex.command(
        command(CommandType.OVERRIDE, OverrideParams(linear=0.5, angular=0.1, duration_s=2))
    )
    until = (NOW + timedelta(seconds=2)).isoformat()
    assert robot.calls[-1] == ("velocity", "0.5", "0.1", until)
    assert acks(tmp_path / "outbox.db")[-1] == ("executing", None)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (command(CommandType.ESTOP, EstopParams(), key=generate_private_key()), "bad_signature"),
        (command(CommandType.ESTOP, EstopParams(), device="amr-2"), "wrong_device"),
        (
            command(CommandType.RELEASE, ReleaseParams(reason="x"), at=NOW - timedelta(minutes=5)),
            "expired",
        ),
        (b'{"v": "1.0", "cmd_id": "c-9", "type": "estop"}', "malformed"),
    ],
)
async def test_refused_commands_say_why_and_move_nothing(
    tmp_path: Path, outbox: Outbox, payload: bytes, reason: str
) -> None:
    robot, clock = Robot(), [NOW]
    ex = executor(tmp_path, outbox, robot, clock)
    await ex.command(payload)
    assert robot.calls == []
    assert not ex.supervisor.status.engaged
    [(status, said)] = acks(tmp_path / "outbox.db")
    assert said == reason
    assert status == ("expired" if reason == "expired" else "rejected")


async def test_a_replayed_release_is_refused_even_after_a_restart(
    tmp_path: Path, outbox: Outbox
) -> None:
    robot, clock = Robot(), [NOW]
    release = command(CommandType.RELEASE, ReleaseParams(reason="clear"))
    await executor(tmp_path, outbox, robot, clock).command(release)
    again = executor(tmp_path, outbox, robot, clock)  # a new process: cache and latch from disk
    await again.command(command(CommandType.ESTOP, EstopParams()))
    await again.command(release)
    assert again.supervisor.status.engaged
    assert acks(tmp_path / "outbox.db")[-1] == ("rejected", "replayed")


async def test_without_a_robot_motion_fails_plainly_and_stops(
    tmp_path: Path, outbox: Outbox
) -> None:
    clock = [NOW]
    ex = executor(tmp_path, outbox, NoRobot(), clock)
    await ex.command(
        command(CommandType.OVERRIDE, OverrideParams(linear=1, angular=0, duration_s=1))
    )
    status, _ = acks(tmp_path / "outbox.db")[-1]
    assert status == "failed"
    assert ex.supervisor.status.engaged
    assert "no robot adapter" in (ex.supervisor.status.reason or "")
