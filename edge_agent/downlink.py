"""Commands from the hub: verify, remember, dispatch to the safety supervisor, acknowledge.

Every command gets acknowledgements through the outbox's never-drop class:
`received` once verified, then `done`, `executing` (a motion under way) or
`failed` with the reason; a command that fails verification gets `rejected`
(or `expired`) with the reason and moves nothing. Verified command ids are kept
in a replay cache on disk, so a command replayed after a restart is refused too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.errors import AgentError
from edge_agent.files import write_atomic
from edge_agent.outbox import Outbox
from edge_agent.robot import RobotAdapter, RobotUnavailable
from edge_agent.safety import Decision, Drive, FollowPath, SafetySupervisor, Stop
from protocol import (
    Ack,
    AckStatus,
    Channel,
    Command,
    CommandRejected,
    CommandType,
    Event,
    KnownEvent,
    RejectReason,
    Severity,
    accept_command,
    encode,
)
from protocol.models import ReleaseParams, StopSource

logger = logging.getLogger(__name__)

CommandHandler = Callable[[Command], Awaitable[str]]

REPLAY_KEEP = timedelta(hours=1)
"""How long past its expiry a command id is remembered (beyond any clock skew)."""
REPLAY_MAX = 10_000


class ReplayCache:
    """Command ids already executed, with their expiry; a JSON file that survives restarts."""

    def __init__(self, path: Path | None, clock: Callable[[], datetime]) -> None:
        self._path, self._clock = path, clock
        self._seen: dict[str, datetime] = {}
        if path is not None and path.exists():
            try:
                raw = orjson.loads(path.read_bytes())
                self._seen = {k: datetime.fromisoformat(v) for k, v in raw.items()}
            except (OSError, ValueError, TypeError, AttributeError):
                logger.exception("replay cache %s unreadable; starting empty", path)

    def __contains__(self, cmd_id: object) -> bool:
        return cmd_id in self._seen

    def add(self, cmd_id: str, expires_at: datetime) -> None:
        """Remember `cmd_id` until well after it expires; persist."""
        now = self._clock()
        self._seen = {k: v for k, v in self._seen.items() if v + REPLAY_KEEP > now}
        self._seen[cmd_id] = max(expires_at, now)
        if len(self._seen) > REPLAY_MAX:
            keep = sorted(self._seen.items(), key=lambda kv: kv[1])[-REPLAY_MAX:]
            self._seen = dict(keep)
        if self._path is not None:
            data = {k: v.isoformat() for k, v in self._seen.items()}
            write_atomic(self._path, orjson.dumps(data))


class CommandExecutor:
    """Turns downlink `cmd` messages into supervisor decisions, robot actions and acks."""

    def __init__(
        self,
        *,
        device_id: str,
        hub_key: Ed25519PublicKey | None,
        supervisor: SafetySupervisor,
        robot: RobotAdapter,
        outbox: Outbox,
        replay: ReplayCache,
        notify: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._device, self._hub_key = device_id, hub_key
        self.supervisor, self._robot, self._outbox = supervisor, robot, outbox
        self._replay, self.notify, self._clock = replay, notify, clock
        self.last_command: str | None = None
        self.handlers: dict[CommandType, CommandHandler] = {}
        """Commands that do not move the robot (`capture`, ...): the handler's text is the
        `done` ack's detail; an `AgentError` fails the command with its message."""
        self.on_model: Callable[[bytes], Awaitable[None]] | None = None
        """Where a `model` assignment goes (the model manager)."""

    async def handle(self, channel: Channel, payload: bytes) -> None:
        """The uplink's downlink hook."""
        if channel is Channel.CMD:
            await self.command(payload)
        elif channel is Channel.MODEL:
            if self.on_model is None:
                logger.warning("model assignment received but this agent runs no perception")
                return
            await self.on_model(payload)

    async def command(self, payload: bytes) -> None:
        """Verify one command and carry it out."""
        now = self._clock()
        if self._hub_key is None:
            await self._reject(
                payload, RejectReason.BAD_SIGNATURE, "no hub key pinned ([hub] public_key)", now
            )
            return
        try:
            cmd = accept_command(
                payload, device_id=self._device, hub_key=self._hub_key, now=now, seen=self._replay
            )
        except CommandRejected as exc:
            await self._rejected(exc, now)
            return
        if cmd.type is CommandType.ESTOP:
            # Stop first, paperwork after: the replay cache, the latch and the acks are
            # written to disk next, and a stop must not wait behind any of that.
            await self._robot.stop()
        self._replay.add(cmd.cmd_id, cmd.expires_at)
        self.last_command = f"{cmd.type.value} {cmd.cmd_id} at {now:%H:%M:%S}"
        await self._ack(cmd.cmd_id, AckStatus.RECEIVED, now)
        handler = self.handlers.get(cmd.type)
        if handler is not None:
            await self._handled(cmd, handler)
            return
        decision = self._decide(cmd, now)
        await self.apply(decision)
        if not decision.accepted:
            await self._ack(cmd.cmd_id, AckStatus.FAILED, self._clock(), detail=decision.reason)
            return
        try:
            await self._move(decision)
        except RobotUnavailable as exc:
            stop = self.supervisor.engage(
                StopSource.LOCAL, f"robot unavailable: {exc}", self._clock()
            )
            await self.apply(stop)
            await self._ack(cmd.cmd_id, AckStatus.FAILED, self._clock(), detail=str(exc))
            return
        moving = any(isinstance(a, Drive | FollowPath) for a in decision.actions)
        status = AckStatus.EXECUTING if moving else AckStatus.DONE
        await self._ack(cmd.cmd_id, status, self._clock())

    async def _handled(self, cmd: Command, handler: CommandHandler) -> None:
        try:
            detail = await handler(cmd)
        except AgentError as exc:
            await self._ack(cmd.cmd_id, AckStatus.FAILED, self._clock(), detail=str(exc)[:1000])
            return
        await self._ack(cmd.cmd_id, AckStatus.DONE, self._clock(), detail=detail[:1000] or None)

    def _decide(self, cmd: Command, now: datetime) -> Decision:
        if cmd.type is CommandType.ESTOP:
            reason = getattr(cmd.params, "reason", "") or f"stop by {cmd.issued_by}"
            return self.supervisor.engage(StopSource.HUB, reason, now)
        if cmd.type is CommandType.RELEASE and isinstance(cmd.params, ReleaseParams):
            return self.supervisor.release(cmd.cmd_id, cmd.params.reason, now)
        if cmd.type in (CommandType.OVERRIDE, CommandType.PATH_PLAN):
            return self.supervisor.motion(cmd, now)
        return Decision(False, reason=f"{cmd.type.value} is not supported by this agent yet")

    async def apply(self, decision: Decision) -> None:
        """Stops first (never behind anything), then the events."""
        if any(isinstance(a, Stop) for a in decision.actions):
            await self._robot.stop()
        if decision.events:
            await self._outbox.put_many([(Channel.EVENTS, encode(e)) for e in decision.events])
            self.notify()

    async def _move(self, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, Drive):
                await self._robot.set_velocity(action.linear, action.angular, action.until)
            elif isinstance(action, FollowPath):
                await self._robot.follow_path(action.waypoints, action.speed)

    async def _rejected(self, exc: CommandRejected, now: datetime) -> None:
        logger.warning("command refused (%s): %s", exc.reason.value, exc)
        event = Event(
            ts=now,
            type=KnownEvent.COMMAND_REJECTED,
            severity=Severity.WARNING,
            detail={"cmd_id": exc.cmd_id, "reason": exc.reason.value, "detail": str(exc)[:200]},
        )
        await self._outbox.put(Channel.EVENTS, encode(event))
        if exc.cmd_id:
            status = AckStatus.EXPIRED if exc.reason is RejectReason.EXPIRED else AckStatus.REJECTED
            await self._ack(exc.cmd_id, status, now, detail=str(exc), reason=exc.reason.value)
        self.notify()

    async def _reject(
        self, payload: bytes, reason: RejectReason, detail: str, now: datetime
    ) -> None:
        cmd_id = None
        try:
            raw = orjson.loads(payload)
            cmd_id = raw.get("cmd_id") if isinstance(raw, dict) else None
        except orjson.JSONDecodeError:
            pass
        await self._rejected(
            CommandRejected(reason, detail, cmd_id=cmd_id if isinstance(cmd_id, str) else None), now
        )

    async def _ack(
        self,
        cmd_id: str,
        status: AckStatus,
        at: datetime,
        *,
        detail: str | None = None,
        reason: str | None = None,
    ) -> None:
        ack = Ack(
            cmd_id=cmd_id,
            status=status,
            at=at,
            detail=detail[:256] if detail else None,
            reason=reason,
        )
        await self._outbox.put(Channel.ACKS, encode(ack))
        self.notify()
