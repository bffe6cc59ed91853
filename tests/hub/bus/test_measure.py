"""The tuning script's workload and report (the run itself needs Kafka: docs/hub-bus.md)."""

from __future__ import annotations

from hub.bus.kafka import ProducerTuning
from hub.bus.measure import batches, parse_args, summarize, table, workload
from hub.bus.topics import TELEMETRY_RAW


def test_the_workload_is_keyed_over_the_devices_with_values_of_the_size() -> None:
    records = workload(records=1000, size=300, devices=50)
    assert len(records) == 1000
    assert {topic for topic, _, _ in records} == {TELEMETRY_RAW}
    assert len({key for _, key, _ in records}) == 50
    assert {len(value) for _, _, value in records} == {300}
    assert [len(b) for b in batches(records, 300)] == [300, 300, 300, 100]


def test_the_report_marks_the_best_setting_and_the_ratio_to_bare() -> None:
    slow = summarize(ProducerTuning(20, 16 * 1024), 1000, [(1.0, [0.010, 0.030])])
    fast = summarize(ProducerTuning(0, 64 * 1024), 1000, [(0.5, [0.005]), (0.25, [0.004])])
    report = table([slow, fast], bare=2000.0, best=fast, size=300)
    assert "| 20 | 16 KiB | 1,000 |" in report
    assert "| 0 | 64 KiB | 2,667 **(best)** |" in report
    assert "bus / bare = 1.33" in report


def test_the_defaults_are_the_documented_matrix() -> None:
    args = parse_args(["127.0.0.1:19092"])
    assert (args.records, args.size, args.devices, args.batch) == (50_000, 300, 50, 500)
    assert (args.linger, args.batch_kib) == ([0, 5, 20], [16, 64, 256])
