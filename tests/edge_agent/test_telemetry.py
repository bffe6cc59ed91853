"""Telemetry batching, the drain rate limiter and the reconnect backoff."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson

from edge_agent.config import SyntheticSource
from edge_agent.outbox import Outbox
from edge_agent.telemetry import Batcher, SourceContext, build_source
from edge_agent.uplink import TokenBucket
from protocol.backoff import Backoff


async def test_batcher_writes_one_row_per_full_batch_and_flushes_the_rest(tmp_path: Path) -> None:
    outbox = await Outbox.open(tmp_path / "o.db", device="amr-1")
    flushed = []
    batcher = Batcher(outbox, max_points=10, max_delay_s=60, on_flush=lambda: flushed.append(1))
    source = build_source(
        SyntheticSource(rate_hz=10_000, limit=25), SourceContext(outbox, tmp_path)
    )
    runner = asyncio.create_task(batcher.run())
    await source.run(batcher.add)
    await asyncio.sleep(0.05)
    runner.cancel()
    await batcher.flush()
    batch = await outbox.claim(limit=100, live_since=0, backlog_limit=100, resend_before=0)
    sizes = [len(orjson.loads(m.payload)["body"]["points"]) for m in batch]
    assert max(sizes) == 10
    assert sum(sizes) == 25
    values = [p["value"] for m in batch for p in orjson.loads(m.payload)["body"]["points"]]
    assert sorted(values) == list(range(25))
    assert flushed
    await outbox.close()


def test_token_bucket_limits_the_backlog_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=100, burst=50, clock=lambda: now[0])
    assert bucket.available() == 50
    bucket.take(50)
    assert bucket.available() == 0
    now[0] = 0.2
    assert bucket.available() == 20
    now[0] = 100.0
    assert bucket.available() == 50


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, rng=random.Random(1))
    delays = [backoff.next() for _ in range(8)]
    assert all(0.25 <= d <= 4.0 for d in delays)
    assert max(delays[-3:]) > 2.0
    backoff.reset()
    assert backoff.next() <= 0.5
