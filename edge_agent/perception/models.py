"""The model manager: signed model versions on disk, activated without a restart.

A hub assignment (the retained `model` downlink) or a signed manifest goes through,
in order: the hub's signature (over the assignment and over the manifest, as
received), the target device, a safe name and version, free disk space, the
download (streamed, capped at the manifest's size, with the device's credentials),
the size and sha256 of the bytes, a new onnxruntime session in a worker thread, the
classes and input size against the manifest, a warm-up that checks the output
shape, and the median latency on a synthetic frame against the budget. Only then is
`current` replaced. Any failure leaves `current` as it was, emits `model_rejected`
with the reason and raises `ModelRejected`; a version downloaded for the attempt is
deleted again.

The swap is a single attribute assignment: the pipeline reads `manager.current` once
per frame, so the frame in flight finishes on the old model and the next one runs
on the new; no frame is dropped for it. `current` carries the detector together
with its `ModelRef`, so a result always names the model that produced it.

The version that was active before stays on disk for `rollback()`, which swaps back
(after the same checks of its bytes and signature, but not the latency budget: going
back to a model that ran before must not fail on a busy machine). `state.json`
records both, so a restart comes back to the same model (`load_active()`), or to the
previous one when the active one no longer loads.

Example:
    manager = manager_for(settings, settings.model, options=settings.perception.detector,
                          on_event=publish)
    await manager.load_active()                       # at start-up
    executor.on_model = manager.receive               # the `model` downlink; never blocks
    perception = Perception(..., models=lambda: manager.current or local_model, ...)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(manager.run(), name="models")  # assignments and CLI requests
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from edge_agent.perception.detector import Detector, DetectorOptions, ModelError, class_label
from edge_agent.perception.model_config import ModelSection
from edge_agent.perception.model_fetch import Fetcher, FetchError, HttpFetcher, Progress
from edge_agent.perception.model_store import (
    InstalledModel,
    ModelRejected,
    ModelRequest,
    ModelResult,
    ModelState,
    ModelStore,
    ModelUnavailable,
    Refusal,
    answer_request,
    check_names,
    file_digest,
    take_requests,
)
from edge_agent.perception.pipeline import ActiveModel
from protocol.codec import loads_object, validate
from protocol.errors import DecodeError, SignatureError
from protocol.models import Event, KnownEvent, ModelAssignment, ModelManifest, ModelRef, Severity
from protocol.signing import public_key_from_text, verify_object

if TYPE_CHECKING:
    from edge_agent.config import AgentSettings

logger = logging.getLogger(__name__)

__all__ = [
    "Activation",
    "ActiveModel",
    "ModelManager",
    "ModelRejected",
    "ModelSection",
    "ModelUnavailable",
    "Refusal",
    "manager_for",
    "measure_latency",
]

SPACE_RESERVE_BYTES = 64 << 20
"""Free space left on the data disk after a download, for the outbox and the logs."""
LATENCY_FRAME = (480, 640)
"""Size of the synthetic frame the latency is measured on (a common camera size)."""


@dataclass(frozen=True, slots=True)
class Activation:
    """What an activation or a rollback did."""

    active: ModelRef
    previous: ModelRef | None
    latency_ms: float | None
    took_s: float
    changed: bool = True


Message = bytes | Mapping[str, Any] | BaseModel
"""An assignment or a manifest: bytes as received, a parsed JSON object, or a wire model."""


def _ignore(_event: Event) -> None:
    return None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def manager_for(
    settings: AgentSettings,
    section: ModelSection,
    *,
    options: DetectorOptions | None = None,
    on_event: Callable[[Event], None] = _ignore,
    allow_file: bool = False,
) -> ModelManager:
    """A manager for this agent: its data dir, pinned hub key, device id and credentials.

    Raise `SignatureError` if `[hub] public_key` is set but malformed. `allow_file` lets
    manifests name `file://` artifacts (for `edge-agent model activate --manifest`).
    """
    hub, mqtt = settings.hub, settings.mqtt
    fetcher = HttpFetcher(
        base_url=hub.url,
        username=mqtt.username,
        password=mqtt.password,
        timeout_s=section.download_timeout_s,
        retries=section.download_retries,
        allow_file=allow_file,
    )
    return ModelManager(
        settings.device.data_dir,
        hub_key=public_key_from_text(hub.public_key) if hub.public_key else None,
        options=options,
        settings=section,
        device_id=settings.device.id,
        fetcher=fetcher,
        on_event=on_event,
    )


def measure_latency(detector: Detector, runs: int) -> float:
    """Median `latency_ms` of `runs` detections of a synthetic 640x480 frame. Blocks."""
    frame: npt.NDArray[np.uint8] = np.random.default_rng(0).integers(
        0, 256, (*LATENCY_FRAME, 3), dtype=np.uint8
    )
    return statistics.median(detector.detect(frame).latency_ms for _ in range(runs))


class ModelManager:
    """Installs, checks, activates and rolls back model versions (see the module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        hub_key: Ed25519PublicKey | None,
        options: DetectorOptions | None = None,
        settings: ModelSection | None = None,
        device_id: str | None = None,
        fetcher: Fetcher | None = None,
        on_event: Callable[[Event], None] = _ignore,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = ModelStore(data_dir / "models")
        self.settings = settings or ModelSection()
        self._key, self._device = hub_key, device_id
        self._options = options or DetectorOptions()
        self._fetcher: Fetcher = fetcher or HttpFetcher(
            timeout_s=self.settings.download_timeout_s, retries=self.settings.download_retries
        )
        self._on_event, self._clock = on_event, clock
        self.current: ActiveModel | None = None
        """The model serving frames, or None. Replaced whole, never changed in place."""
        self._state = self.store.read_state()
        self._serving = False
        self._lock = asyncio.Lock()
        self._pending: bytes | None = None
        self._wake = asyncio.Event()

    @property
    def state(self) -> ModelState:
        """Active and previous version as last saved."""
        return self._state

    @property
    def ref(self) -> ModelRef | None:
        """The serving model's name, version and sha256 (for `state` and results)."""
        current = self.current
        return current.ref if current is not None else None

    # --- start-up ------------------------------------------------------------------------

    async def load_active(self) -> ActiveModel | None:
        """Serve what `state.json` names; if it no longer loads, the previous one; else none."""
        async with self._lock:
            self._serving = True
            await asyncio.to_thread(self.store.clean)
            self._state = await asyncio.to_thread(self.store.read_state)
            for ref in (self._state.active, self._state.previous):
                if ref is None:
                    continue
                try:
                    installed = await asyncio.to_thread(self._installed, ref)
                    detector, _ = await self._prepare(installed, check_latency=False)
                except ModelRejected as exc:
                    exc.name, exc.version = ref.name, ref.version
                    self._rejected(exc)
                    continue
                if ref != self._state.active:
                    logger.warning(
                        "falling back to the previous model %s %s", ref.name, ref.version
                    )
                    try:
                        await self._save(
                            self._state.model_copy(update={"active": ref, "previous": None})
                        )
                    except ModelRejected as exc:  # serve it anyway; the next start falls back again
                        logger.warning("%s", exc)
                    self._activated(ref, None, None, 0.0)
                self.current = _serving_model(detector, installed)
                logger.info("serving model %s %s", ref.name, ref.version)
                return self.current
            if self._state.active is None:
                logger.info("no model is active yet (%s)", self.store.state_path)
            else:
                logger.error("no model could be loaded: detection is off until one is activated")
            return None

    # --- activation ----------------------------------------------------------------------

    async def activate(self, message: Message, *, progress: Progress | None = None) -> Activation:
        """Check, download, load and swap to the model of a signed assignment or manifest.

        Raise `ModelRejected` (after a `model_rejected` event) and keep the old model.
        """
        async with self._lock:
            started = time.monotonic()
            with self._reporting():
                manifest, raw = self._verified(message)
            with self._reporting(manifest.name, manifest.version):
                if self._is_serving(manifest):
                    return self._unchanged(manifest, started)
                installed, fresh = await self._install(manifest, raw, progress)
                try:
                    return await self._activate(installed, check_latency=True, started=started)
                except ModelRejected:
                    if fresh:
                        await asyncio.to_thread(self.store.remove, manifest.name, manifest.version)
                    raise

    async def install(
        self, message: Message, *, progress: Progress | None = None
    ) -> tuple[InstalledModel, bool]:
        """Check and download a signed manifest without activating it; True if newly placed."""
        async with self._lock:
            with self._reporting():
                manifest, raw = self._verified(message)
            with self._reporting(manifest.name, manifest.version):
                return await self._install(manifest, raw, progress)

    async def activate_installed(self, name: str, version: str) -> Activation:
        """Activate a version already on disk (all checks, the latency budget included)."""
        async with self._lock:
            started = time.monotonic()
            with self._reporting(name, version):
                installed = await asyncio.to_thread(self.store.read, name, version)
                if self._is_serving(installed.manifest):
                    return self._unchanged(installed.manifest, started)
                return await self._activate(installed, check_latency=True, started=started)

    async def rollback(self) -> Activation:
        """Swap back to the previous version; it becomes active and the active one previous."""
        async with self._lock:
            started = time.monotonic()
            previous = self._state.previous
            name, version = (previous.name, previous.version) if previous else (None, None)
            with self._reporting(name, version):
                installed = await asyncio.to_thread(self._installed, previous)
                return await self._activate(installed, check_latency=False, started=started)

    @contextlib.contextmanager
    def _reporting(self, name: str | None = None, version: str | None = None) -> Iterator[None]:
        """Name the model in a rejection raised inside, and report it as an event."""
        try:
            yield
        except ModelRejected as exc:
            exc.name, exc.version = exc.name or name, exc.version or version
            self._rejected(exc)
            raise
        except OSError as exc:  # the data dir: full, read-only, permissions
            detail = f"model storage failed: {exc}"
            rejected = ModelRejected(Refusal.STORAGE_FAILED, detail, name=name, version=version)
            self._rejected(rejected)
            raise rejected from exc

    # --- the agent's loop ----------------------------------------------------------------

    def offer(self, payload: bytes) -> None:
        """The `model` downlink (an assignment): handled by `run()`, the newest wins."""
        self._pending = payload
        self._wake.set()

    async def receive(self, payload: bytes) -> None:
        """`offer` for an async hook (`CommandExecutor.on_model`); returns at once."""
        self.offer(payload)

    def wake(self) -> None:
        """Look for `edge-agent model` requests now (a signal handler may call this)."""
        self._wake.set()

    async def run(self) -> None:
        """Handle assignments from the hub and requests from `edge-agent model`, forever."""
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.request_poll_s):
                    await self._wake.wait()
            self._wake.clear()
            payload, self._pending = self._pending, None
            try:
                if payload is not None:
                    await self._assigned(payload)
                for request in await asyncio.to_thread(take_requests, self.store):
                    result = await self.execute(request)
                    await asyncio.to_thread(answer_request, self.store, result)
            except Exception:
                # A fault here must not take the agent down: the old model keeps serving.
                logger.exception("model manager step failed; the current model keeps serving")

    async def execute(self, request: ModelRequest) -> ModelResult:
        """Carry out a request of `edge-agent model` and say how it went."""
        try:
            if request.action == "rollback":
                activation = await self.rollback()
            else:
                activation = await self.activate_installed(
                    request.name or "", request.version or ""
                )
        except ModelRejected as exc:
            return ModelResult(id=request.id, ok=False, refusal=exc.refusal, detail=exc.detail)
        return ModelResult(
            id=request.id,
            ok=True,
            active=activation.active,
            previous=activation.previous,
            latency_ms=activation.latency_ms,
            detail="" if activation.changed else "already active",
        )

    async def _assigned(self, payload: bytes) -> None:
        if not payload.strip():
            # The hub cleared the retained assignment (a rollout rolled back on a device it
            # had never assigned a model before): nothing new to run.
            logger.info("the hub withdrew this device's model assignment; the current model stays")
            return
        sig = _signature_of(payload)
        if sig is not None and sig == self._state.assignment:
            logger.debug("model assignment already handled; ignoring the retained copy")
            return
        try:
            await self.activate(payload)
        except ModelUnavailable as exc:
            logger.warning("%s; it will be tried again when the hub sends it again", exc)
            return
        except ModelRejected:
            pass  # reported by `activate`; remembered below so a reconnect does not redo it
        if sig is not None:
            try:
                await self._save(self._state.model_copy(update={"assignment": sig}))
            except ModelRejected as exc:  # at worst the retained copy is handled again later
                logger.warning("%s", exc)

    # --- steps ---------------------------------------------------------------------------

    def _hub_key(self) -> Ed25519PublicKey:
        if self._key is None:
            raise ModelRejected(
                Refusal.NO_HUB_KEY,
                "no hub key is pinned ([hub] public_key), so no model signature can be checked",
            )
        return self._key

    def _verified(self, message: Message) -> tuple[ModelManifest, dict[str, Any]]:
        """The manifest in a message, once its signatures and names are checked."""
        key = self._hub_key()
        raw = _as_object(message)
        name, version = _names_in(raw)
        try:
            if "manifest" in raw:
                assignment = validate(raw, ModelAssignment)
                verify_object(raw, key)
                self._check_device(assignment)
                raw = dict(raw["manifest"])
            manifest = validate(raw, ModelManifest)
            verify_object(raw, key)
            check_names(manifest.name, manifest.version)
        except DecodeError as exc:
            raise ModelRejected(Refusal.MALFORMED, str(exc), name=name, version=version) from exc
        except SignatureError as exc:
            raise ModelRejected(
                Refusal.BAD_SIGNATURE, str(exc), name=name, version=version
            ) from exc
        except ModelRejected as exc:
            exc.name, exc.version = exc.name or name, exc.version or version
            raise
        return manifest, raw

    def _check_device(self, assignment: ModelAssignment) -> None:
        if self._device is not None and assignment.device != self._device:
            raise ModelRejected(
                Refusal.WRONG_DEVICE,
                f"the assignment is for {assignment.device}, this is {self._device}",
            )

    def _is_serving(self, manifest: ModelManifest) -> bool:
        ref = _ref(manifest)
        if self._serving:
            return self.ref == ref
        return self._state.active == ref  # a CLI process: nothing loaded, the state says

    def _unchanged(self, manifest: ModelManifest, started: float) -> Activation:
        took = time.monotonic() - started
        return Activation(_ref(manifest), self._state.previous, None, took, changed=False)

    async def _install(
        self, manifest: ModelManifest, raw: dict[str, Any], progress: Progress | None
    ) -> tuple[InstalledModel, bool]:
        where = {"name": manifest.name, "version": manifest.version}
        try:
            existing = await asyncio.to_thread(self.store.read, manifest.name, manifest.version)
        except ModelRejected as exc:
            if exc.refusal is not Refusal.NOT_INSTALLED:
                raise
        else:
            if existing.manifest.sha256 != manifest.sha256:
                raise ModelRejected(
                    Refusal.VERSION_CONFLICT,
                    f"{manifest.name} {manifest.version} is installed with sha256 "
                    f"{existing.manifest.sha256[:12]}, this manifest says {manifest.sha256[:12]}; "
                    "a version never changes: publish a new one",
                    **where,
                )
            if existing.raw != raw:  # same bytes, newly signed manifest: keep the newer one
                existing = await asyncio.to_thread(self.store.rewrite_manifest, existing, raw)
            return existing, False
        return await self._download(manifest, raw, progress), True

    async def _download(
        self, manifest: ModelManifest, raw: dict[str, Any], progress: Progress | None
    ) -> InstalledModel:
        where = {"name": manifest.name, "version": manifest.version}
        part = await asyncio.to_thread(self.store.new_part)
        free = (await asyncio.to_thread(shutil.disk_usage, part.parent)).free
        if free < manifest.size + SPACE_RESERVE_BYTES:
            raise ModelRejected(
                Refusal.NO_SPACE,
                f"{manifest.size} bytes do not fit: {free} bytes free on {part.parent}",
                **where,
            )
        try:
            try:
                await self._fetcher.fetch(
                    manifest.url, part, max_bytes=manifest.size, progress=progress
                )
            except FetchError as exc:
                kind = ModelUnavailable if exc.retriable else ModelRejected
                raise kind(Refusal.DOWNLOAD_FAILED, str(exc), **where) from exc
            size, digest = await asyncio.to_thread(file_digest, part)
            _check_bytes(manifest, size, digest, "the downloaded")
            return await asyncio.to_thread(self.store.place, raw, manifest, part)
        finally:
            await asyncio.to_thread(part.unlink, missing_ok=True)

    def _installed(self, ref: ModelRef | None) -> InstalledModel:
        if ref is None:
            raise ModelRejected(Refusal.NO_PREVIOUS, "there is no previous version to go back to")
        installed = self.store.read(ref.name, ref.version)
        if installed.manifest.sha256 != ref.sha256:
            raise ModelRejected(
                Refusal.SHA256_MISMATCH,
                f"the manifest on disk names sha256 {installed.manifest.sha256[:12]}, "
                f"state.json {ref.sha256[:12]}",
                name=ref.name,
                version=ref.version,
            )
        return installed

    async def _activate(
        self, installed: InstalledModel, *, check_latency: bool, started: float
    ) -> Activation:
        detector, latency = await self._prepare(installed, check_latency=check_latency)
        ref, state = installed.ref, self._state
        previous = state.active if state.active not in (None, ref) else state.previous
        await self._save(state.model_copy(update={"active": ref, "previous": previous}))
        self.current = _serving_model(detector, installed)
        took = time.monotonic() - started
        logger.info(
            "model %s %s active (median %.1f ms, %.2f s to activate)",
            ref.name,
            ref.version,
            latency,
            took,
        )
        self._activated(ref, previous, latency, took)
        try:
            removed = await asyncio.to_thread(
                self.store.prune, self._state, self.settings.keep_versions
            )
        except OSError:
            logger.exception("pruning old model versions failed")
        else:
            for old in removed:
                logger.info("pruned model %s %s", old.name, old.version)
        return Activation(ref, previous, latency, took)

    async def _prepare(
        self, installed: InstalledModel, *, check_latency: bool
    ) -> tuple[Detector, float]:
        """Verify, load, compare, warm up and time a version in a worker thread."""
        key = self._hub_key()
        manifest = installed.manifest
        try:
            verify_object(installed.raw, key)
        except SignatureError as exc:
            raise ModelRejected(
                Refusal.BAD_SIGNATURE,
                f"{installed.directory / 'manifest.json'}: {exc}",
                name=manifest.name,
                version=manifest.version,
            ) from exc
        return await asyncio.to_thread(self._load, installed, check_latency)

    def _load(self, installed: InstalledModel, check_latency: bool) -> tuple[Detector, float]:
        manifest, path = installed.manifest, installed.model_path
        try:
            size, digest = file_digest(path)
        except OSError as exc:
            raise ModelRejected(Refusal.NOT_INSTALLED, f"cannot read {path}: {exc}") from exc
        _check_bytes(manifest, size, digest, f"{path}:")
        try:
            detector = Detector(path, self._options)
        except ModelError as exc:
            raise _load_refusal(exc, path) from exc
        _check_bytes(manifest, size, detector.info.sha256, f"{path} (as loaded):")
        _check_matches(detector, manifest)
        try:
            detector.warm_up(self.settings.warm_up_runs)
            latency = measure_latency(detector, self.settings.latency_runs)
        except ModelError as exc:
            raise _load_refusal(exc, path, Refusal.WARM_UP_FAILED) from exc
        budget = self.settings.latency_budget_ms
        if latency > budget:
            message = f"median latency {latency:.1f} ms is over the {budget:g} ms budget"
            if check_latency:
                raise ModelRejected(Refusal.OVER_LATENCY_BUDGET, message)
            logger.warning("%s %s: %s", manifest.name, manifest.version, message)
        return detector, latency

    async def _save(self, state: ModelState) -> None:
        try:
            self._state = await asyncio.to_thread(self.store.write_state, state)
        except OSError as exc:
            raise ModelRejected(
                Refusal.STORAGE_FAILED, f"cannot write {self.store.state_path}: {exc}"
            ) from exc

    # --- events --------------------------------------------------------------------------

    def _activated(
        self, ref: ModelRef, previous: ModelRef | None, latency: float | None, took: float
    ) -> None:
        detail: dict[str, Any] = {"name": ref.name, "version": ref.version, "sha256": ref.sha256}
        if previous is not None:
            detail["previous"] = f"{previous.name} {previous.version}"
        if latency is not None:
            detail["latency_ms"] = round(latency, 2)
        detail["took_ms"] = round(took * 1000, 1)
        self._on_event(Event(ts=self._clock(), type=KnownEvent.MODEL_ACTIVATED, detail=detail))

    def _rejected(self, exc: ModelRejected) -> None:
        logger.warning("%s", exc)
        detail: dict[str, Any] = {"reason": exc.refusal.value, "detail": exc.detail[:500]}
        if exc.name:
            detail["name"] = exc.name[:128]
        if exc.version:
            detail["version"] = exc.version[:128]
        event = Event(
            ts=self._clock(),
            type=KnownEvent.MODEL_REJECTED,
            severity=Severity.WARNING,
            detail=detail,
        )
        self._on_event(event)


def _serving_model(detector: Detector, installed: InstalledModel) -> ActiveModel:
    baseline = {name: list(values) for name, values in installed.manifest.baseline.items()}
    return ActiveModel(detector, installed.ref, baseline or None)


def _ref(manifest: ModelManifest) -> ModelRef:
    return ModelRef(name=manifest.name, version=manifest.version, sha256=manifest.sha256)


def _as_object(message: Message) -> dict[str, Any]:
    if isinstance(message, BaseModel):
        dumped: dict[str, Any] = message.model_dump(mode="json", exclude_none=True)
        return dumped
    if isinstance(message, Mapping):
        return dict(message)
    try:
        return loads_object(message)
    except DecodeError as exc:
        raise ModelRejected(Refusal.MALFORMED, str(exc)) from exc


def _names_in(raw: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Name and version as far as they can be read, for the rejection event."""
    manifest = raw.get("manifest", raw)
    if not isinstance(manifest, Mapping):
        return None, None
    name, version = manifest.get("name"), manifest.get("version")
    return (
        name[:128] if isinstance(name, str) and name else None,
        version[:128] if isinstance(version, str) and version else None,
    )


def _signature_of(payload: bytes) -> str | None:
    try:
        sig = loads_object(payload).get("sig")
    except DecodeError:
        return None
    return sig if isinstance(sig, str) and sig else None


def _check_bytes(manifest: ModelManifest, size: int, digest: str, what: str) -> None:
    if size != manifest.size:
        raise ModelRejected(
            Refusal.SIZE_MISMATCH,
            f"{what} bytes are {size} long; the manifest says {manifest.size}",
        )
    if digest != manifest.sha256:
        raise ModelRejected(
            Refusal.SHA256_MISMATCH,
            f"{what} bytes hash to sha256 {digest[:16]}..., the manifest says "
            f"{manifest.sha256[:16]}...: refusing tampered or corrupt bytes",
        )


def _check_matches(detector: Detector, manifest: ModelManifest) -> None:
    info = detector.info
    expected = tuple(class_label(name, i) for i, name in enumerate(manifest.classes))
    if info.classes != expected:
        raise ModelRejected(
            Refusal.MANIFEST_MISMATCH,
            f"the model's classes {list(info.classes)[:10]} are not the manifest's "
            f"{list(expected)[:10]}",
        )
    if info.input_size != tuple(manifest.input_size):
        raise ModelRejected(
            Refusal.MANIFEST_MISMATCH,
            f"the model's input {list(info.input_size)} (height, width) is not the "
            f"manifest's {list(manifest.input_size)}",
        )


def _load_refusal(
    exc: ModelError, path: Path, otherwise: Refusal = Refusal.LOAD_FAILED
) -> ModelRejected:
    # The detector names the output in every complaint about the output's shape.
    message = str(exc).removeprefix(f"{path}: ")
    refusal = Refusal.OUTPUT_SHAPE if "output" in message else otherwise
    return ModelRejected(refusal, message)
