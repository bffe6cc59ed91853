"""`ControlService`: commands from operators to devices, signed, stored, audited, published.

Each command is built with `protocol.commands.new_command`, signed with the hub's
Ed25519 key, stored with status `sent` and audited as allowed in one transaction;
only then is it published, so an ack can never arrive for a command the hub does
not know. A publish the broker does not confirm in time marks the command
`publish_failed` and raises `PublishFailed` (503): whoever pressed stop must know.

A command that is not issued is audited as denied, with why: the device is outside
the caller's scope or missing (then 404, worded like a missing device), or removed
(409). Role checks happen in the routes, which call `deny` for their audit row.

Example:
    >>> async def stop(control: ControlService, principal) -> str:
    ...     sent = await control.send(principal, "amr-7", CommandType.ESTOP,
    ...                               EstopParams(reason="aisle blocked"))
    ...     return sent.status  # 'sent'; the device's acks advance it
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.assets.service import actor_of
from hub.audit.chain import Decision, Entry
from hub.audit.log import AuditLog
from hub.auth.errors import Conflict, InvalidInput, NotFound
from hub.auth.principal import Principal
from hub.control.errors import PublishError, PublishFailed
from hub.control.lifecycle import Step, lifecycle
from hub.control.publisher import CommandPublisher
from hub.settings import ControlSection
from hub.storage.db import transaction
from hub.storage.repositories import assets as asset_repo
from hub.storage.repositories import commands as repo
from hub.storage.repositories.assets import DeviceFilter, DeviceRecord
from hub.storage.repositories.commands import CommandRecord
from protocol import Channel, encode, topic
from protocol.commands import new_command
from protocol.models import (
    Command,
    CommandParams,
    CommandType,
    EstopParams,
    PathPlanParams,
    ReleaseParams,
)
from protocol.signing import sign

logger = logging.getLogger(__name__)

MAX_PAGE = 500
DEVICE_PAGE = 1000


@dataclass(frozen=True, slots=True)
class CommandView:
    """A command with its lifecycle steps."""

    command: CommandRecord
    steps: list[Step]


@dataclass(frozen=True, slots=True)
class _Refusal:
    result: str
    error: NotFound | Conflict


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """A stored command and the signed bytes to publish."""

    record: CommandRecord
    payload: bytes
    expiry_s: int


def _refusal(principal: Principal, device_id: str, device: DeviceRecord | None) -> _Refusal | None:
    if device is None or not principal.can_access_site(device.site_id):
        missing = NotFound(f"no device {device_id!r}", code="device_not_found", device=device_id)
        return _Refusal("not_found" if device is None else "out_of_scope", missing)
    if device.removed_at is not None:
        removed = Conflict(f"device {device_id!r} was removed", code="device_removed")
        return _Refusal("device_removed", removed)
    return None


def _reason_of(params: CommandParams) -> str | None:
    if isinstance(params, EstopParams | ReleaseParams):
        return params.reason or None
    return None


def _audit_params(params: CommandParams) -> dict[str, object]:
    if isinstance(params, PathPlanParams):  # up to 1000 waypoints: their count is enough
        return {"waypoints": len(params.waypoints), "speed": params.speed}
    return params.model_dump(mode="json", exclude={"reason"})


def _record(wire: Command, site_id: str, batch: str | None) -> CommandRecord:
    return CommandRecord(
        cmd_id=wire.cmd_id,
        device_id=wire.device,
        site_id=site_id,
        type=wire.type.value,
        params=wire.params.model_dump(mode="json"),
        issued_by=wire.issued_by,
        issued_at=wire.issued_at,
        expires_at=wire.expires_at,
        reason=_reason_of(wire.params),
        sig=wire.sig,
        batch=batch,
        status="sent",
        detail=None,
        updated_at=wire.issued_at,
    )


async def _all_devices(session: AsyncSession, where: DeviceFilter) -> list[DeviceRecord]:
    devices: list[DeviceRecord] = []
    after: str | None = None
    while True:
        page = await asset_repo.list_devices(session, where=where, after=after, limit=DEVICE_PAGE)
        devices.extend(page)
        if len(page) < DEVICE_PAGE:
            return devices
        after = page[-1].id


def encode_cursor(command: CommandRecord) -> str:
    """The history cursor after `command`: its issue time (µs) and id.

    Example:
        >>> decode_cursor("1767225600000000.abc")
        (datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), 'abc')
    """
    micros = round(command.issued_at.timestamp() * 1_000_000)
    return f"{micros}.{command.cmd_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (issued_at, cmd_id) a cursor stands for; 422 when it is not one."""
    micros, _, cmd_id = cursor.partition(".")
    try:
        at = datetime.fromtimestamp(int(micros) / 1_000_000, UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidInput("not a cursor from this listing", field="cursor") from None
    if not cmd_id:
        raise InvalidInput("not a cursor from this listing", field="cursor")
    return at, cmd_id


class ControlService:
    """Commands for the API: send (one device, a site, the fleet), history, lifecycle."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        audit: AuditLog,
        publisher: CommandPublisher,
        signing_key: Ed25519PrivateKey,
        settings: ControlSection,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions, self._audit, self.publisher = sessions, audit, publisher
        self._key, self._settings, self._clock = signing_key, settings, clock

    # --- sending ---------------------------------------------------------------------------

    async def send(
        self, principal: Principal, device_id: str, type_: CommandType, params: CommandParams
    ) -> CommandRecord:
        """Issue one command to one device; returns it once the broker confirmed it."""
        target = f"device:{device_id}"
        async with transaction(self._sessions) as session:
            device = await asset_repo.get_device(session, device_id=device_id)
            refusal = _refusal(principal, device_id, device)
            if refusal is None and device is not None:
                out = await self._issue(session, principal, device, type_, params, batch=None)
            else:
                assert refusal is not None  # noqa: S101 - one of the two holds
                entry = _entry(
                    principal, f"command.{type_.value}", target, "denied", refusal.result
                )
                await self._audit.record(entry, session=session)
        if refusal is not None:  # raised after the commit, so the denial's audit row stays
            raise refusal.error
        failed = await self._publish([out])
        if failed:
            why = failed[0][1]
            raise PublishFailed(
                f"{type_.value} for {device_id} was not confirmed by the broker ({why}); it may "
                "not reach the device: try again, or stop the robot where it is",
                cmd_id=out.record.cmd_id,
                reason=why,
            )
        return await self._reload(out.record.cmd_id)

    async def estop_site(
        self, principal: Principal, site_id: str, *, reason: str
    ) -> list[CommandRecord]:
        """Stop every active device of the site; 404 when the site is not the caller's."""
        target = f"site:{site_id}"
        async with transaction(self._sessions) as session:
            site = (
                await asset_repo.get_site(session, site_id=site_id)
                if principal.can_access_site(site_id)
                else None
            )
            if site is None:
                entry = _entry(principal, "command.estop_site", target, "denied", "not_found")
                await self._audit.record(entry, session=session)
        if site is None:
            raise NotFound(f"no site {site_id!r}", code="site_not_found", site=site_id)
        where = DeviceFilter(sites=principal.sites, site=site_id)
        return await self._estop_many(principal, where, target, "command.estop_site", reason)

    async def estop_fleet(self, principal: Principal, *, reason: str) -> list[CommandRecord]:
        """Stop every active device the caller may command (all of them, or their sites')."""
        where = DeviceFilter(sites=principal.sites)
        return await self._estop_many(principal, where, "fleet", "command.estop_fleet", reason)

    async def deny(self, principal: Principal, *, action: str, target: str, result: str) -> None:
        """Audit a command refused before it reached this service (the role check)."""
        await self._audit.record(_entry(principal, action, target, "denied", result))

    async def _estop_many(
        self, principal: Principal, where: DeviceFilter, target: str, action: str, reason: str
    ) -> list[CommandRecord]:
        params = EstopParams(reason=reason)
        async with transaction(self._sessions) as session:
            devices = await _all_devices(session, where)
            out = [
                await self._issue(session, principal, d, CommandType.ESTOP, params, batch=target)
                for d in devices
            ]
            detail = {"devices": len(out), "reason": reason or None}
            entry = _entry(principal, action, target, "allowed", f"sent {len(out)}", detail)
            await self._audit.record(entry, session=session)
        failed = await self._publish(out)
        if failed:
            raise PublishFailed(
                f"{len(failed)} of {len(out)} stop commands were not confirmed by the broker; "
                "those devices may not stop: try again, or stop them where they are",
                failed=[
                    {"device": o.record.device_id, "cmd_id": o.record.cmd_id, "reason": why}
                    for o, why in failed
                ],
            )
        return [await self._reload(o.record.cmd_id) for o in out]

    async def _issue(
        self,
        session: AsyncSession,
        principal: Principal,
        device: DeviceRecord,
        type_: CommandType,
        params: CommandParams,
        *,
        batch: str | None,
    ) -> _Outgoing:
        cfg = self._settings
        ttl = cfg.estop_ttl_s if type_ is CommandType.ESTOP else cfg.command_ttl_s
        unsigned = new_command(
            device.id,
            type_,
            params,
            issued_by=principal.username,
            now=self._clock(),
            ttl=timedelta(seconds=ttl),
        )
        wire = sign(unsigned, self._key)
        record = _record(wire, device.site_id, batch)
        await repo.insert_commands(session, commands=[record])
        detail = {
            "cmd_id": wire.cmd_id,
            "site": device.site_id,
            "reason": record.reason,
            "params": _audit_params(params),
            "batch": batch,
        }
        action, target = f"command.{type_.value}", f"device:{device.id}"
        entry = _entry(principal, action, target, "allowed", "sent", detail)
        await self._audit.record(entry, session=session)
        return _Outgoing(record, encode(wire), ttl)

    # --- publishing ------------------------------------------------------------------------

    async def _publish(self, out: Sequence[_Outgoing]) -> list[tuple[_Outgoing, str]]:
        """Publish all at once; mark each published or failed; return the failures."""
        results = await asyncio.gather(*(self._publish_one(o) for o in out))
        failed = [(o, why) for o, why in zip(out, results, strict=True) if why is not None]
        published = [o.record.cmd_id for o, why in zip(out, results, strict=True) if why is None]
        now = self._clock()
        async with transaction(self._sessions) as session:
            await repo.mark_published(session, cmd_ids=published, at=now)
            for o, why in failed:
                await repo.mark_publish_failed(session, cmd_id=o.record.cmd_id, at=now, error=why)
        for o, why in failed:
            logger.error(
                "command %s %s for %s not published: %s",
                o.record.type,
                o.record.cmd_id,
                o.record.device_id,
                why,
            )
        return failed

    async def _publish_one(self, out: _Outgoing) -> str | None:
        try:
            await self.publisher.publish(
                topic(out.record.device_id, Channel.CMD), out.payload, expiry_s=out.expiry_s
            )
        except PublishError as exc:
            return str(exc)[:1000]
        return None

    async def _reload(self, cmd_id: str) -> CommandRecord:
        async with transaction(self._sessions) as session:
            command = await repo.get_command(session, cmd_id=cmd_id)
        assert command is not None  # noqa: S101 - stored by this service
        return command

    # --- reading ---------------------------------------------------------------------------

    async def history(
        self, principal: Principal, device_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[CommandRecord], str | None]:
        """A page of the device's commands, newest first, and the next page's cursor."""
        before = decode_cursor(cursor) if cursor is not None else None
        limit = max(1, min(limit, MAX_PAGE))
        async with transaction(self._sessions) as session:
            device = await asset_repo.get_device(session, device_id=device_id)
            if device is None or not principal.can_access_site(device.site_id):
                raise NotFound(
                    f"no device {device_id!r}", code="device_not_found", device=device_id
                )
            rows = await repo.list_commands(
                session, device_id=device_id, before=before, limit=limit + 1
            )
        page = rows[:limit]
        return page, (encode_cursor(page[-1]) if len(rows) > limit else None)

    async def command(self, principal: Principal, cmd_id: str) -> CommandView:
        """One command with its lifecycle; 404 when missing or of a site outside the scope."""
        async with transaction(self._sessions) as session:
            command = await repo.get_command(session, cmd_id=cmd_id)
            if command is None or not principal.can_access_site(command.site_id):
                raise NotFound(f"no command {cmd_id!r}", code="command_not_found", cmd_id=cmd_id)
            acks = await repo.command_acks(session, cmd_id=cmd_id, device_id=command.device_id)
        return CommandView(command, lifecycle(command, acks))


def _entry(
    principal: Principal,
    action: str,
    target: str,
    decision: Decision,
    result: str,
    detail: Mapping[str, object] | None = None,
) -> Entry:
    actor = actor_of(principal)
    return Entry(
        actor=actor.name,
        role=actor.role,
        action=action,
        decision=decision,
        target=target,
        result=result,
        detail={"via": principal.via, **(detail or {})},
    )
