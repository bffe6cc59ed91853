"""Measure `KafkaBus` producer settings on a real broker: `python -m hub.bus.measure BOOTSTRAP`.

Produces `--records` records of `--size` bytes keyed over `--devices` device ids,
through `produce_many` in batches of `--batch`, once per (`linger_ms`,
`max_batch_size`) pair (median of `--repeat` runs), into a throw-away topic prefix
that is deleted afterwards. A last row shows a bare aiokafka send loop with the
best pair, the ceiling the bus's own code runs under. The figures and the chosen
defaults are in docs/hub-bus.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

from aiokafka import AIOKafkaProducer

from hub.bus.base import ProducerRecord
from hub.bus.kafka import KafkaBus, ProducerTuning
from hub.bus.kafka_admin import delete_prefixed_topics, ensure_topics
from hub.bus.topics import TELEMETRY_RAW

KIB = 1024


@dataclass(frozen=True, slots=True)
class Run:
    """One measured setting: throughput and the latency of one `produce_many` call."""

    linger_ms: int
    max_batch_size: int
    records_per_s: float
    p50_ms: float
    p99_ms: float


def workload(records: int, size: int, devices: int) -> list[ProducerRecord]:
    """`records` telemetry records of `size` bytes, keyed round-robin over `devices` ids."""
    payload = os.urandom(size // 2).hex().encode()[:size]
    return [(TELEMETRY_RAW, f"amr-{n % devices}".encode(), payload) for n in range(records)]


def batches(items: Sequence[ProducerRecord], size: int) -> list[Sequence[ProducerRecord]]:
    """`items` cut into consecutive slices of `size`."""
    return [items[i : i + size] for i in range(0, len(items), size)]


async def measure_bus(
    bootstrap: str, prefix: str, tuning: ProducerTuning, chunks: list[Sequence[ProducerRecord]]
) -> tuple[float, list[float]]:
    """Seconds to produce all `chunks` through a `KafkaBus`, and each call's seconds."""
    bus = KafkaBus(bootstrap, topic_prefix=prefix, tuning=tuning, topics=[TELEMETRY_RAW])
    await bus.start()
    try:
        await bus.produce_many(chunks[0])  # warm-up: connections and metadata
        latencies = []
        started = time.perf_counter()
        for chunk in chunks:
            began = time.perf_counter()
            await bus.produce_many(chunk)
            latencies.append(time.perf_counter() - began)
        return time.perf_counter() - started, latencies
    finally:
        await bus.stop()


async def measure_bare(
    bootstrap: str, prefix: str, tuning: ProducerTuning, chunks: list[Sequence[ProducerRecord]]
) -> float:
    """Seconds for a bare aiokafka loop (send all of a chunk, then gather) with `tuning`."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=tuning.linger_ms,
        max_batch_size=tuning.max_batch_size,
    )
    await asyncio.wait_for(producer.start(), 30)
    try:
        started = time.perf_counter()
        for chunk in chunks:
            futures = [await producer.send(prefix + t, key=k, value=v) for t, k, v in chunk]
            await asyncio.wait_for(asyncio.gather(*futures), 30)
        return time.perf_counter() - started
    finally:
        await asyncio.wait_for(producer.stop(), 30)


def summarize(tuning: ProducerTuning, count: int, runs: list[tuple[float, list[float]]]) -> Run:
    """The median run's throughput and latency percentiles over all runs' calls."""
    seconds = statistics.median(total for total, _ in runs)
    calls = sorted(latency for _, latencies in runs for latency in latencies)
    p99 = calls[min(len(calls) - 1, int(len(calls) * 0.99))]
    return Run(
        tuning.linger_ms,
        tuning.max_batch_size,
        count / seconds,
        statistics.median(calls) * 1000,
        p99 * 1000,
    )


def table(runs: list[Run], bare: float, best: Run, size: int) -> str:
    """A Markdown table of the runs, the best marked, and the bare-aiokafka row."""
    lines = [
        "| linger_ms | max_batch_size | records/s | MB/s | produce_many p50 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        mark = " **(best)**" if run is best else ""
        lines.append(
            f"| {run.linger_ms} | {run.max_batch_size // KIB} KiB | {run.records_per_s:,.0f}{mark}"
            f" | {run.records_per_s * size / 1e6:.1f} | {run.p50_ms:.1f} | {run.p99_ms:.1f} |"
        )
    lines.append(
        f"| bare aiokafka, best pair | | {bare:,.0f} | {bare * size / 1e6:.1f} | | |"
        f"\n\nbus / bare = {best.records_per_s / bare:.2f}"
    )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> str:
    """Run every setting and return the table."""
    prefix = f"measure-{secrets.token_hex(3)}."
    chunks = batches(workload(args.records, args.size, args.devices), args.batch)
    await ensure_topics(args.bootstrap, [prefix + TELEMETRY_RAW], partitions=args.partitions)
    try:
        runs = []
        for linger, batch_kib in product(args.linger, args.batch_kib):
            tuning = ProducerTuning(linger_ms=linger, max_batch_size=batch_kib * KIB)
            samples = [
                await measure_bus(args.bootstrap, prefix, tuning, chunks)
                for _ in range(args.repeat)
            ]
            runs.append(summarize(tuning, args.records, samples))
            print(runs[-1], file=sys.stderr)
        best = max(runs, key=lambda r: r.records_per_s)
        best_tuning = ProducerTuning(best.linger_ms, best.max_batch_size)
        bare_runs = [
            await measure_bare(args.bootstrap, prefix, best_tuning, chunks)
            for _ in range(args.repeat)
        ]
        bare = args.records / statistics.median(bare_runs)
        return table(runs, bare, best, args.size)
    finally:
        await delete_prefixed_topics(args.bootstrap, prefix)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m hub.bus.measure", description=__doc__)
    parser.add_argument("bootstrap", help="Kafka bootstrap address, host:port")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=300, help="bytes per record value")
    parser.add_argument("--devices", type=int, default=50, help="distinct keys")
    parser.add_argument("--batch", type=int, default=500, help="records per produce_many")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (median)")
    parser.add_argument("--linger", type=int, nargs="+", default=[0, 5, 20])
    parser.add_argument("--batch-kib", type=int, nargs="+", default=[16, 64, 256])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: print the Markdown table of figures."""
    print(asyncio.run(main_async(parse_args(argv))))


if __name__ == "__main__":
    main()
