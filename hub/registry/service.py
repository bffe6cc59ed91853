"""`RegistryService`: push model versions, serve artifacts to devices, run rollouts.

A push streams the upload to the artifact store, refuses what is not a usable ONNX
detector (422), and stores the version with a manifest signed by the hub's key.
A rollout resolves its target (a group, a site or a list of devices, within the
caller's site scope), assigns the canary devices at once and leaves the rest to
`promote`. Assigning a device stores the assignment and then publishes it, signed,
on the device's retained `model` topic; rolling back publishes each assigned
device's previous assignment again (or clears the topic when there was none).

`tick` (called every `[registry] check_interval_s` by `run_rollouts`) reads what the
devices reported (their stored `state`, `model_rejected` events, detection
latency), asks `rollout.judge` what to do, and does it. State changes are
compare-and-set on the rollout's row, so several API processes running the loop
act once per change.

Example:
    >>> async def push_and_roll(registry: RegistryService, admin, upload) -> None:
    ...     await registry.push(admin, name="det", version="2", read=upload.read, card=None)
    ...     await registry.create_rollout(admin, name="det", version="2",
    ...                                   target=RolloutTarget(group=3), canary_percent=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.audit.chain import SYSTEM, Entry
from hub.audit.log import AuditLog
from hub.auth.errors import ApiError, Conflict, InvalidInput, NotAuthenticated, NotFound
from hub.auth.principal import Principal
from hub.control.errors import PublishError, PublishFailed
from hub.registry.onnx_check import ModelCheckError, ModelInfo, inspect_model
from hub.registry.rollout import (
    IN_PROGRESS,
    DeviceRollout,
    Observation,
    Policy,
    RolloutState,
    Verdict,
    canary_devices,
    judge,
)
from hub.registry.store.artifacts import ArtifactStore, Reader, UploadTooLarge
from hub.settings import RegistrySection
from hub.storage.db import transaction
from hub.storage.repositories import assets as asset_repo
from hub.storage.repositories import registry as repo
from hub.storage.repositories.assets import DeviceFilter, DeviceRecord
from hub.storage.repositories.credentials import active_password_hash, password_matches
from hub.storage.repositories.registry import ModelVersionRecord, RolloutDeviceRecord, RolloutRecord
from protocol import Channel, encode, topic
from protocol.models import ModelAssignment, ModelManifest
from protocol.signing import sign
from protocol.topics import DEVICE_ID_PATTERN

logger = logging.getLogger(__name__)

ARTIFACT_PATH = "/api/v1/models/artifacts/{sha256}"
"""Manifests name artifacts relative to the hub; agents join it to their `[hub] url`."""
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
CLOCK_SKEW = timedelta(seconds=5)
"""Events stamped this long before an assignment still count (device clocks drift)."""
BASELINE_WINDOW = timedelta(hours=1)
DEVICE_PAGE = 1000
MAX_CARD_BYTES = 1 << 20


class DeviceNotAuthenticated(NotAuthenticated):
    """A download without valid device credentials (401, with a Basic challenge)."""

    def headers(self) -> dict[str, str]:
        """RFC 7617: devices authenticate with Basic, their MQTT username and password."""
        return {"WWW-Authenticate": 'Basic realm="outpost-devices"'}


@runtime_checkable
class RetainedPublisher(Protocol):
    """Publishes retained messages (the `model` downlink); `MqttCommandPublisher` is one."""

    async def publish_retained(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 with retain; an empty payload clears the topic. `PublishError`."""
        ...


@dataclass(frozen=True, slots=True)
class RolloutTarget:
    """Exactly one of: a device group id, a site id, a list of device ids."""

    group: int | None = None
    site: str | None = None
    devices: tuple[str, ...] | None = None

    def as_json(self) -> dict[str, Any]:
        """The stored form: only the field that is set."""
        if self.group is not None:
            return {"group": self.group}
        if self.site is not None:
            return {"site": self.site}
        return {"devices": list(self.devices or ())}


@dataclass(frozen=True, slots=True)
class RolloutView:
    """A rollout with its devices."""

    rollout: RolloutRecord
    devices: list[RolloutDeviceRecord]


@dataclass(frozen=True, slots=True)
class _Outgoing:
    device: str
    payload: bytes


class RegistryService:
    """Model versions, artifacts and rollouts for the API (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        audit: AuditLog,
        store: ArtifactStore,
        signing_key: Ed25519PrivateKey,
        publisher: RetainedPublisher | None,
        settings: RegistrySection,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions, self._audit, self.store = sessions, audit, store
        self._key, self.publisher, self.settings = signing_key, publisher, settings
        self._clock = clock

    # --- model versions --------------------------------------------------------------------

    async def push(
        self, principal: Principal, *, name: str, version: str, read: Reader, card: str | None
    ) -> ModelVersionRecord:
        """Check and store an uploaded model; 422 when refused, 409 when the version exists."""
        _check_name("name", name)
        _check_name("version", version)
        card_doc = _parse_card(card)
        async with transaction(self._sessions) as session:
            if await repo.find_model(session, name=name, version=version) is not None:
                raise Conflict(
                    f"{name} {version} exists; a version never changes: push a new one",
                    code="version_exists",
                )
        try:
            staged = await self.store.stage(read)
        except UploadTooLarge as exc:
            raise InvalidInput(str(exc), field="file") from None
        try:
            info = await _inspect(staged.path, staged.size)
            manifest = self._manifest(name, version, staged.sha256, staged.size, info, card_doc)
            await self.store.keep(staged)
        except BaseException:
            self.store.discard(staged)
            raise
        document = {**card_doc, "classes": list(info.classes), "input_size": list(info.input_size)}
        async with transaction(self._sessions) as session:
            if await repo.find_model(session, name=name, version=version) is not None:
                raise Conflict(f"{name} {version} was pushed meanwhile", code="version_exists")
            record = await repo.insert_model(
                session,
                name=name,
                version=version,
                sha256=staged.sha256,
                size=staged.size,
                card=document,
                manifest=manifest.model_dump(mode="json", exclude_none=True),
                created_by=principal.username,
                now=self._clock(),
            )
        logger.info("model %s %s pushed (sha256 %s)", name, version, staged.sha256[:12])
        return record

    def _manifest(
        self,
        name: str,
        version: str,
        sha256: str,
        size: int,
        info: ModelInfo,
        card: Mapping[str, Any],
    ) -> ModelManifest:
        try:
            manifest = ModelManifest(
                name=name,
                version=version,
                sha256=sha256,
                size=size,
                url=ARTIFACT_PATH.format(sha256=sha256),
                input_size=info.input_size,
                classes=list(info.classes),
                baseline=card.get("baseline") or {},
                created_at=self._clock(),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(f"{where}: {first['msg']}", field="card") from None
        return sign(manifest, self._key)

    async def models(self, *, name: str | None = None) -> list[ModelVersionRecord]:
        """Pushed versions, newest first."""
        async with transaction(self._sessions) as session:
            return await repo.list_models(session, name=name)

    async def model(self, name: str, version: str) -> ModelVersionRecord:
        """One version; 404 when unknown."""
        async with transaction(self._sessions) as session:
            found = await repo.find_model(session, name=name, version=version)
        if found is None:
            raise NotFound(f"no model {name} {version}", code="model_not_found")
        return found

    async def artifact(self, device: str, password: str, sha256: str) -> Path:
        """The artifact file for a device that proved its credentials and was assigned it.

        401 for bad credentials; 404, worded the same, when the artifact is unknown or
        was never assigned to this device (so ids of other models do not leak).
        """
        stored = None
        if DEVICE_ID.match(device):
            async with transaction(self._sessions) as session:
                stored = await active_password_hash(session, device=device)
        if stored is None or not await asyncio.to_thread(password_matches, stored, password):
            raise DeviceNotAuthenticated(
                "device credentials do not check out", code="bad_credentials"
            )
        async with transaction(self._sessions) as session:
            allowed = await repo.may_fetch(session, device_id=device, sha256=sha256)
        path = self.store.path_of(sha256) if allowed else None
        if path is None:
            raise NotFound(f"no artifact {sha256[:64]} for {device}", code="artifact_not_found")
        return path

    # --- rollouts --------------------------------------------------------------------------

    async def create_rollout(
        self,
        principal: Principal,
        *,
        name: str,
        version: str,
        target: RolloutTarget,
        canary_percent: int,
        auto_promote: bool = False,
    ) -> RolloutView:
        """Start a rollout: the canary devices are assigned now, the rest on `promote`."""
        model = await self.model(name, version)
        now = self._clock()
        async with transaction(self._sessions) as session:
            devices = await self._resolve(session, principal, target)
            busy = await repo.busy_devices(
                session, device_ids=[d.id for d in devices], states=IN_PROGRESS
            )
            if busy:
                device, other = sorted(busy.items())[0]
                raise Conflict(
                    f"{device} is in rollout {other}, still in progress: promote it or roll it "
                    "back first",
                    code="rollout_in_progress",
                    rollout=other,
                )
            canary = set(canary_devices([d.id for d in devices], canary_percent))
            rollout_id = await repo.insert_rollout(
                session,
                model_id=model.id,
                target=target.as_json(),
                canary_percent=canary_percent,
                auto_promote=auto_promote,
                state=RolloutState.CANARY.value,
                created_by=principal.username,
                devices=[(d.id, d.id in canary) for d in devices],
                now=now,
            )
            out = await self._assign(session, rollout_id, model, sorted(canary), now)
        logger.info(
            "rollout %s of %s %s: %d canary of %d devices",
            rollout_id,
            name,
            version,
            len(canary),
            len(devices),
        )
        await self._send(rollout_id, out, raise_on_failure=True)
        return await self.rollout(rollout_id)

    async def _resolve(
        self, session: AsyncSession, principal: Principal, target: RolloutTarget
    ) -> list[DeviceRecord]:
        if target.devices is not None:
            return await self._listed(session, principal, target.devices)
        if target.group is not None:
            group = await asset_repo.get_group(session, group_id=target.group)
            if group is None or not principal.can_access_site(group.site_id):
                raise NotFound(f"no group {target.group}", code="group_not_found")
            where = DeviceFilter(sites=principal.sites, group_id=group.id)
        else:
            site = target.site or ""
            if not principal.can_access_site(site) or not await asset_repo.get_site(
                session, site_id=site
            ):
                raise NotFound(f"no site {site!r}", code="site_not_found")
            where = DeviceFilter(sites=principal.sites, site=site)
        devices = await _all_devices(session, where)
        if not devices:
            raise InvalidInput("the target has no active devices", field="target")
        return devices

    async def _listed(
        self, session: AsyncSession, principal: Principal, ids: Sequence[str]
    ) -> list[DeviceRecord]:
        if not ids:
            raise InvalidInput("list at least one device", field="target")
        devices = []
        for device_id in sorted(set(ids)):
            device = await asset_repo.get_device(session, device_id=device_id)
            if device is None or not principal.can_access_site(device.site_id):
                raise NotFound(f"no device {device_id!r}", code="device_not_found")
            if device.removed_at is not None:
                raise Conflict(f"device {device_id!r} was removed", code="device_removed")
            devices.append(device)
        return devices

    async def rollouts(self, principal: Principal) -> list[RolloutRecord]:
        """Rollouts, newest first: all of them, or for a user limited to sites, those that
        reach a device of theirs."""
        async with transaction(self._sessions) as session:
            items = await repo.list_rollouts(session)
            if principal.sites is None:
                return items
            visible = await repo.rollouts_in_sites(session, sites=principal.sites)
        return [r for r in items if r.id in visible]

    async def rollout(self, rollout_id: int, principal: Principal | None = None) -> RolloutView:
        """One rollout with its devices (those in the caller's sites); 404 when unknown or
        when it reaches none of them."""
        async with transaction(self._sessions) as session:
            found = await repo.get_rollout(session, rollout_id=rollout_id)
            devices = await repo.rollout_devices(session, rollout_id=rollout_id)
            if principal is not None and principal.sites is not None:
                mine = await repo.devices_in_sites(
                    session, device_ids=[d.device_id for d in devices], sites=principal.sites
                )
                devices = [d for d in devices if d.device_id in mine]
                if not devices:
                    found = None
        if found is None:
            raise NotFound(f"no rollout {rollout_id}", code="rollout_not_found")
        return RolloutView(found, devices)

    async def promote(self, principal: Principal | None, rollout_id: int) -> RolloutView:
        """Assign the model to the rest of the target; 409 unless the canary is healthy."""
        now = self._clock()
        async with transaction(self._sessions) as session:
            found = await repo.get_rollout(session, rollout_id=rollout_id, for_update=True)
            if found is None:
                raise NotFound(f"no rollout {rollout_id}", code="rollout_not_found")
            # The loop promotes a healthy canary (auto_promote) in the same step it finds it.
            allowed = {RolloutState.CANARY_HEALTHY.value}
            if principal is None:
                allowed.add(RolloutState.CANARY.value)
            if found.state not in allowed and principal is None:
                return RolloutView(
                    found, await repo.rollout_devices(session, rollout_id=rollout_id)
                )
            if found.state not in allowed:
                raise Conflict(
                    f"rollout {rollout_id} is {found.state}; only a rollout whose canary is "
                    "healthy (canary_healthy) can be promoted",
                    code="not_promotable",
                    state=found.state,
                )
            moved = await repo.update_rollout(
                session,
                rollout_id=rollout_id,
                values={"state": RolloutState.PROMOTED.value, "updated_at": now},
                expect_state=found.state,
            )
            if not moved:  # another process acted first
                return await self.rollout(rollout_id)
            devices = await repo.rollout_devices(session, rollout_id=rollout_id)
            rest = [d.device_id for d in devices if d.status == DeviceRollout.PENDING]
            model = await repo.get_model(session, model_id=found.model_id)
            assert model is not None  # noqa: S101 - RESTRICT keeps it
            out = await self._assign(session, rollout_id, model, rest, now)
            await self._audit.record(
                self._entry(principal, "model.rollout.promote", rollout_id, {"devices": len(rest)}),
                session=session,
            )
        logger.info("rollout %s promoted to %d more devices", rollout_id, len(rest))
        await self._send(rollout_id, out, raise_on_failure=principal is not None)
        return await self.rollout(rollout_id)

    async def rollback(
        self, principal: Principal | None, rollout_id: int, *, reason: str
    ) -> RolloutView:
        """Give every assigned device its previous model again; 409 when already rolled back."""
        now = self._clock()
        async with transaction(self._sessions) as session:
            found = await repo.get_rollout(session, rollout_id=rollout_id, for_update=True)
            if found is None:
                raise NotFound(f"no rollout {rollout_id}", code="rollout_not_found")
            if found.state == RolloutState.ROLLED_BACK:
                raise Conflict(f"rollout {rollout_id} is rolled back already", code="rolled_back")
            moved = await repo.update_rollout(
                session,
                rollout_id=rollout_id,
                values={
                    "state": RolloutState.ROLLED_BACK.value,
                    "reason": reason.replace("\x00", "")[:2000],
                    "updated_at": now,
                    "finished_at": now,
                },
                expect_state=found.state,
            )
            if not moved:
                return await self.rollout(rollout_id)
            out = await self._unassign(session, rollout_id, now)
            await self._audit.record(
                self._entry(principal, "model.rollout.rollback", rollout_id, {"reason": reason}),
                session=session,
            )
        logger.warning("rollout %s rolled back: %s", rollout_id, reason[:200])
        await self._send(rollout_id, out, raise_on_failure=principal is not None)
        return await self.rollout(rollout_id)

    # --- assignments -----------------------------------------------------------------------

    async def _assign(
        self,
        session: AsyncSession,
        rollout_id: int,
        model: ModelVersionRecord,
        device_ids: Sequence[str],
        now: datetime,
    ) -> list[_Outgoing]:
        out = []
        for device in device_ids:
            previous = await repo.current_model_id(session, device_id=device)
            await repo.set_assignment(
                session, device_id=device, model_id=model.id, rollout_id=rollout_id, now=now
            )
            await repo.update_rollout_device(
                session,
                rollout_id=rollout_id,
                device_id=device,
                values={
                    "status": DeviceRollout.ASSIGNED.value,
                    "assigned_at": now,
                    "previous_model_id": previous,
                },
            )
            out.append(_Outgoing(device, self._assignment(device, model.manifest, now)))
        return out

    async def _unassign(
        self, session: AsyncSession, rollout_id: int, now: datetime
    ) -> list[_Outgoing]:
        out = []
        for d in await repo.rollout_devices(session, rollout_id=rollout_id):
            if d.assigned_at is None:
                continue
            previous = (
                await repo.get_model(session, model_id=d.previous_model_id)
                if d.previous_model_id is not None
                else None
            )
            if previous is None:
                await repo.clear_assignment(session, device_id=d.device_id)
                out.append(_Outgoing(d.device_id, b""))
            else:
                await repo.set_assignment(
                    session, device_id=d.device_id, model_id=previous.id, rollout_id=None, now=now
                )
                payload = self._assignment(d.device_id, previous.manifest, now)
                out.append(_Outgoing(d.device_id, payload))
            await repo.update_rollout_device(
                session,
                rollout_id=rollout_id,
                device_id=d.device_id,
                values={"status": DeviceRollout.ROLLED_BACK.value},
            )
        return out

    def _assignment(self, device: str, manifest: Mapping[str, Any], now: datetime) -> bytes:
        signed = ModelManifest.model_validate(manifest)
        assignment = ModelAssignment(device=device, manifest=signed, assigned_at=now)
        return encode(sign(assignment, self._key))

    async def _send(
        self, rollout_id: int, out: Sequence[_Outgoing], *, raise_on_failure: bool
    ) -> None:
        results = await asyncio.gather(*(self._publish(o) for o in out))
        failed = [(o.device, why) for o, why in zip(out, results, strict=True) if why is not None]
        if not failed:
            return
        async with transaction(self._sessions) as session:
            for device, why in failed:
                await repo.update_rollout_device(
                    session,
                    rollout_id=rollout_id,
                    device_id=device,
                    values={"detail": f"publish failed: {why}"[:1000]},
                )
        logger.error("rollout %s: %d assignments not published", rollout_id, len(failed))
        if raise_on_failure:
            raise PublishFailed(
                f"{len(failed)} of {len(out)} model assignments were not confirmed by the broker",
                failed=[{"device": d, "reason": why} for d, why in failed],
            )

    async def _publish(self, out: _Outgoing) -> str | None:
        if self.publisher is None:
            return "this hub process has no MQTT publisher for model assignments"
        try:
            await self.publisher.publish_retained(topic(out.device, Channel.MODEL), out.payload)
        except PublishError as exc:
            return str(exc)[:1000]
        return None

    def _entry(
        self, principal: Principal | None, action: str, rollout_id: int, detail: dict[str, Any]
    ) -> Entry:
        if principal is None:
            actor, role = SYSTEM.name, None
        else:
            actor, role = principal.username, principal.role.value
        return Entry(
            actor=actor,
            role=role,
            action=action,
            decision="allowed",
            target=f"rollout:{rollout_id}",
            result="done",
            detail=detail,
        )

    # --- the loop --------------------------------------------------------------------------

    async def tick(self) -> list[tuple[int, str]]:
        """Judge every rollout in progress once and act; the (rollout, action) pairs taken."""
        async with transaction(self._sessions) as session:
            active = await repo.list_rollouts(session, states=IN_PROGRESS)
        taken = []
        for rollout in active:
            try:
                action = await self._step(rollout)
            except (ApiError, PublishError) as exc:
                logger.warning("rollout %s: %s", rollout.id, exc)
                continue
            if action != "wait":
                taken.append((rollout.id, action))
        return taken

    async def _step(self, rollout: RolloutRecord) -> str:
        now = self._clock()
        async with transaction(self._sessions) as session:
            devices = await repo.rollout_devices(session, rollout_id=rollout.id)
            observations = await self._observe(session, rollout, devices, now)
        policy = Policy(
            health_window=timedelta(seconds=self.settings.canary_health_s),
            latency_factor=self.settings.latency_factor,
            auto_promote=rollout.auto_promote,
        )
        verdict = judge(
            RolloutState(rollout.state),
            observations,
            canary_active_at=rollout.canary_active_at,
            now=now,
            policy=policy,
        )
        await self._record(rollout, devices, observations, verdict, now)
        if verdict.action == "rollback":
            await self.rollback(None, rollout.id, reason=verdict.reason or "automatic")
        elif verdict.action == "promote":
            await self.promote(None, rollout.id)
        return verdict.action

    async def _observe(
        self,
        session: AsyncSession,
        rollout: RolloutRecord,
        devices: Sequence[RolloutDeviceRecord],
        now: datetime,
    ) -> list[Observation]:
        assigned = [d for d in devices if d.assigned_at is not None]
        if not assigned:
            return []
        states = await asset_repo.device_states(session, device_ids=[d.device_id for d in assigned])
        since = min(d.assigned_at for d in assigned if d.assigned_at is not None) - CLOCK_SKEW
        events = await repo.rejections(
            session, device_ids=[d.device_id for d in assigned], since=since
        )
        observations = []
        for d in assigned:
            assert d.assigned_at is not None  # noqa: S101 - filtered above
            status = states.get(d.device_id)
            running = ((status.state or {}).get("model") or {}) if status is not None else {}
            rejected = _rejection(rollout, d, events)
            latency, baseline = await self._latency(session, rollout, d, now)
            observations.append(
                Observation(
                    device=d.device_id,
                    active=running.get("sha256") == rollout.sha256,
                    rejected=rejected,
                    latency_ms=latency,
                    baseline_ms=baseline,
                )
            )
        return observations

    async def _latency(
        self, session: AsyncSession, rollout: RolloutRecord, d: RolloutDeviceRecord, now: datetime
    ) -> tuple[float | None, float | None]:
        assert d.assigned_at is not None  # noqa: S101 - only assigned devices
        latency = await repo.mean_latency(
            session, device_id=d.device_id, sha256=rollout.sha256, start=d.assigned_at, end=now
        )
        if latency is None or d.previous_model_id is None:
            return latency, None
        previous = await repo.get_model(session, model_id=d.previous_model_id)
        if previous is None:
            return latency, None
        baseline = await repo.mean_latency(
            session,
            device_id=d.device_id,
            sha256=previous.sha256,
            start=d.assigned_at - BASELINE_WINDOW,
            end=d.assigned_at,
        )
        return latency, baseline

    async def _record(
        self,
        rollout: RolloutRecord,
        devices: Sequence[RolloutDeviceRecord],
        observations: Sequence[Observation],
        verdict: Verdict,
        now: datetime,
    ) -> None:
        by_id = {d.device_id: d for d in devices}
        async with transaction(self._sessions) as session:
            for o in observations:
                status, detail = _device_status(o)
                current = by_id[o.device]
                if status != current.status and current.status != DeviceRollout.ROLLED_BACK:
                    await repo.update_rollout_device(
                        session,
                        rollout_id=rollout.id,
                        device_id=o.device,
                        values={"status": status, "detail": detail},
                    )
            values: dict[str, Any] = {}
            if verdict.canary_active_at != rollout.canary_active_at:
                values["canary_active_at"] = verdict.canary_active_at
            if verdict.action in ("canary_healthy", "complete"):
                state = RolloutState.CANARY_HEALTHY if verdict.action == "canary_healthy" else None
                values["state"] = (state or RolloutState.COMPLETED).value
                if state is None:
                    values["finished_at"] = now
            if values:
                values["updated_at"] = now
                await repo.update_rollout(
                    session, rollout_id=rollout.id, values=values, expect_state=rollout.state
                )
        if "state" in values:
            logger.info("rollout %s is %s", rollout.id, values["state"])


def _device_status(o: Observation) -> tuple[str, str | None]:
    if o.rejected is not None:
        return DeviceRollout.REJECTED.value, o.rejected[:1000]
    if o.active:
        return DeviceRollout.ACTIVE.value, None
    return DeviceRollout.ASSIGNED.value, None


def _rejection(
    rollout: RolloutRecord, d: RolloutDeviceRecord, events: Sequence[repo.Rejection]
) -> str | None:
    """The reason of the device's first `model_rejected` about this model since assignment."""
    assert d.assigned_at is not None  # noqa: S101 - only assigned devices
    for event in events:
        if event.device != d.device_id or event.ts < d.assigned_at - CLOCK_SKEW:
            continue
        name, version = event.detail.get("name"), event.detail.get("version")
        if (name, version) == (None, None) and event.detail.get("reason") == "malformed":
            continue  # the empty retained message of a cleared assignment, not a model
        if (name, version) != (None, None) and (name, version) != (rollout.name, rollout.version):
            continue  # about another model (a rollback, a local activation)
        reason = str(event.detail.get("reason") or "rejected")
        detail = str(event.detail.get("detail") or "")
        return f"{reason}: {detail}" if detail else reason
    return None


async def _all_devices(session: AsyncSession, where: DeviceFilter) -> list[DeviceRecord]:
    devices: list[DeviceRecord] = []
    after: str | None = None
    while True:
        page = await asset_repo.list_devices(session, where=where, after=after, limit=DEVICE_PAGE)
        devices.extend(page)
        if len(page) < DEVICE_PAGE:
            return devices
        after = page[-1].id


async def _inspect(path: Path, size: int) -> ModelInfo:
    if size == 0:
        raise InvalidInput("the file is empty", field="file")
    try:
        return await asyncio.to_thread(inspect_model, path)
    except ModelCheckError as exc:
        raise InvalidInput(f"refused: {exc}", field="file") from None


def _check_name(field: str, value: str) -> None:
    if not SAFE_NAME.match(value):
        raise InvalidInput(
            f"model {field} must be letters, digits, '.', '_', '+' or '-', starting with a "
            "letter or digit (at most 128)",
            field=field,
        )


def _parse_card(card: str | None) -> dict[str, Any]:
    if card is None or not card.strip():
        return {}
    if "\x00" in card or "\\u0000" in card:
        raise InvalidInput("the card must not contain NUL characters", field="card")
    if len(card) > MAX_CARD_BYTES:
        raise InvalidInput(f"the card is larger than {MAX_CARD_BYTES} bytes", field="card")
    try:
        document = orjson.loads(card)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the card is not JSON: {exc}", field="card") from None
    if not isinstance(document, dict):
        raise InvalidInput("the card must be a JSON object", field="card")
    return document


@contextlib.asynccontextmanager
async def run_rollouts(registry: RegistryService) -> AsyncIterator[None]:
    """While inside: `registry.tick()` every `[registry] check_interval_s` (a named task)."""

    async def loop() -> None:
        while True:
            try:
                await registry.tick()
            except Exception:  # a database hiccup must not end the loop; the next tick retries
                logger.exception("rollout check failed")
            await asyncio.sleep(registry.settings.check_interval_s)

    task = asyncio.create_task(loop(), name="rollouts")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
