"""The drift worker: each device's drift windows scored against its references.

A worker-role consumer group on `telemetry.raw`. Points of one window (`drift.*`,
one timestamp) are gathered per device; `grace_s` after a window's first point (an
agent may split a window over several batches) it is scored, PSI per histogram:

- `drift.psi_train` (tag `hist`): against the `baseline` of the model the device
  reports running (its state's model sha256, looked up in the registry): how far the
  camera is from what the model learned from;
- `drift.psi` (tag `hist`), `drift.psi_max` and `drift.psi_input` (the worst of the
  image histograms: brightness, contrast, blur): against the device camera's own
  reference, learned from its first `[drift] reference_windows` windows under that
  model (`hub.drift.reference`); while it is being learned, `drift.reference_windows`
  says how many windows it has.

Scores go back on `telemetry.raw` as the device's telemetry, stream `hub-drift`, seq =
the window's time in milliseconds, so that:

- the writer stores them like any point (a re-computed window is a duplicate);
- the alert worker's default "Drift over threshold" rule watches `drift.psi_input`;
- charts and `outpost drift report` read them through the telemetry API.

A device whose model is not in the registry (pushed by hand), or whose model has no
baseline, gets no score; the worker says so once per model in its log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.bus.base import Bus, BusError, Record
from hub.bus.topics import TELEMETRY_RAW
from hub.drift import reference
from hub.drift.models import running_model
from hub.drift.psi import HIST_PREFIX, INPUT_KEYS, Window, compare, live_histograms
from hub.settings import HubSettings
from hub.storage.db import transaction
from hub.storage.errors import StorageUnavailable
from protocol import (
    Channel,
    DecodeError,
    Envelope,
    TelemetryBatch,
    TelemetryPoint,
    decode_envelope,
    encode,
)
from protocol.backoff import Backoff

logger = logging.getLogger(__name__)

STREAM = "hub-drift"
"""The stream of hub-computed drift scores, beside each device's own streams."""
BASELINE_TTL_S = 60.0


@dataclass(frozen=True, slots=True)
class Baseline:
    """What a device's model was trained on: its classes and histograms."""

    sha256: str
    classes: tuple[str, ...]
    histograms: dict[str, list[float]]


class DriftWorker:
    """Scores drift windows as they arrive (see the module docstring)."""

    def __init__(
        self, settings: HubSettings, bus: Bus, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self._settings, self._bus, self._sessions = settings, bus, sessions
        self._cfg = settings.drift
        self._pending: dict[tuple[str, int], tuple[float, Window]] = {}
        self._baselines: dict[str, tuple[float, Baseline | None]] = {}
        self._unknown: set[str] = set()
        self.scored = 0

    async def run(self) -> None:
        """Consume until cancelled, riding out bus and database outages."""
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                async with self._bus.consumer([TELEMETRY_RAW], group=self._cfg.group) as consumer:
                    while True:
                        records = await consumer.poll(max_records=1000, timeout_s=1.0)
                        self.take(records)
                        await self.flush()
                        await consumer.commit()
                        backoff.reset()
            except (BusError, StorageUnavailable) as exc:
                delay = backoff.next()
                logger.warning("drift worker paused %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)

    def take(self, records: Sequence[Record], *, now: float | None = None) -> None:
        """Gather the drift points of a batch into their windows."""
        arrived = time.monotonic() if now is None else now
        for record in records:
            envelope = _decode(record)
            if envelope is None or envelope.stream == STREAM:
                continue
            assert isinstance(envelope.body, TelemetryBatch)  # noqa: S101 - checked in _decode
            for point in envelope.body.points:
                if not point.metric.startswith(HIST_PREFIX):
                    continue
                key = (envelope.device, int(point.ts.timestamp() * 1000))
                if key not in self._pending:
                    self._pending[key] = (arrived, Window(*key))
                self._pending[key][1].add(point.metric, point.tags, point.value)

    async def flush(self, *, now: float | None = None, force: bool = False) -> int:
        """Score the windows older than the grace period; returns how many were scored."""
        moment = time.monotonic() if now is None else now
        due = [
            key
            for key, (arrived, _) in self._pending.items()
            if force or moment - arrived >= self._cfg.grace_s
        ]
        out: list[tuple[str, bytes, bytes]] = []
        for key in due:
            _, window = self._pending.pop(key)
            envelope = await self._scored(window)
            if envelope is not None:
                out.append((TELEMETRY_RAW, window.device.encode(), encode(envelope)))
        if out:
            await self._bus.produce_many(out)
            self.scored += len(out)
        return len(out)

    async def _scored(self, window: Window) -> Envelope | None:
        baseline = await self._baseline(window.device)
        if baseline is None:
            return None
        live = live_histograms(window, baseline.classes, baseline.histograms)
        if not live:
            return None
        ts = datetime.fromtimestamp(window.ts_ms / 1000, UTC)
        async with transaction(self._sessions) as session:
            ref = await reference.learn(
                session,
                device=window.device,
                camera=window.tags.get("camera", ""),
                model_sha256=baseline.sha256,
                window_ms=window.ts_ms,
                live=live,
                needed=self._cfg.reference_windows,
                now=datetime.now(UTC),
            )
        tags = {**window.tags, "model_sha256": baseline.sha256[:12]}
        points = _points(ts, "drift.psi_train", compare(live, baseline.histograms), tags)
        if ref.learning:
            points.append(
                TelemetryPoint(
                    ts=ts, metric="drift.reference_windows", value=ref.windows + 1, tags=tags
                )
            )
        else:
            psi = compare(live, ref.histograms)
            points += _points(ts, "drift.psi", psi, tags)
            if psi:
                points.append(
                    TelemetryPoint(
                        ts=ts, metric="drift.psi_max", value=max(psi.values()), tags=tags
                    )
                )
            seen = [psi[k] for k in INPUT_KEYS if k in psi]
            if seen:
                points.append(
                    TelemetryPoint(ts=ts, metric="drift.psi_input", value=max(seen), tags=tags)
                )
        if not points:
            return None
        return Envelope(
            device=window.device,
            stream=STREAM,
            seq=window.ts_ms,
            ts=ts,
            kind=Channel.TELEMETRY,
            body=TelemetryBatch(points=points),
        )

    async def _baseline(self, device: str) -> Baseline | None:
        cached = self._baselines.get(device)
        if cached is not None and time.monotonic() - cached[0] < BASELINE_TTL_S:
            return cached[1]
        async with transaction(self._sessions) as session:
            model, manifest = await running_model(session, device)
        sha = (model or {}).get("sha256")
        baseline = None
        if manifest and manifest.get("baseline"):
            baseline = Baseline(
                sha256=str(sha),
                classes=tuple(manifest.get("classes", [])),
                histograms={k: list(v) for k, v in manifest["baseline"].items()},
            )
        elif sha and sha not in self._unknown:
            self._unknown.add(sha)
            logger.info(
                "model %s of %s has no baseline in the registry: no drift score", sha[:12], device
            )
        self._baselines[device] = (time.monotonic(), baseline)
        return baseline


def _points(
    ts: datetime, metric: str, psi: dict[str, float], tags: dict[str, str]
) -> list[TelemetryPoint]:
    return [
        TelemetryPoint(ts=ts, metric=metric, value=v, tags={**tags, "hist": k})
        for k, v in sorted(psi.items())
    ]


def _decode(record: Record) -> Envelope | None:
    try:
        envelope = decode_envelope(record.value)
    except DecodeError:
        return None
    return envelope if isinstance(envelope.body, TelemetryBatch) else None
