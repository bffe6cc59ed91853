"""`outpost bench ingest --json` end to end against the dev services, at a small size.

Asserts the printed shape, not the target: the machine is shared and noisy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

OUTPOST = str(Path(sys.executable).parent / "outpost")
STAGES = {
    "paho": "paho_qos1_points_per_s",
    "kafka": "kafka_acks_all_points_per_s",
    "copy": "copy_points_per_s",
}
POINTS = 6000


@pytest.mark.timeout(120)
def test_bench_ingest_prints_one_json_object_with_the_ratio(
    mqtt_url: str, kafka_bootstrap: str, pg_dsn: str
) -> None:
    args = [OUTPOST, "bench", "ingest", "--json", "--agents", "2", "--points", str(POINTS)]
    args += ["--mqtt-url", mqtt_url, "--kafka", kafka_bootstrap, "--pg-dsn", pg_dsn]
    out = subprocess.run(args, capture_output=True, text=True, timeout=110, check=False)

    assert out.returncode in (0, 1), out.stderr[-3000:]
    data = json.loads(out.stdout)  # stdout holds the one object and nothing else
    assert data["name"] == "ingest"
    assert data["target"] == ">= 0.5"
    assert data["ratio"] > 0
    assert out.returncode == (0 if data["passed"] else 1)
    assert data["numerator"]["unit"] == data["denominator"]["unit"] == "points/s"
    details = data["details"]
    assert details["agents"] == 2
    assert details["points"] == POINTS
    assert details["duplicates"] == 0
    rates = {stage: details[key] for stage, key in STAGES.items()}
    assert all(rate > 0 for rate in rates.values())
    assert details["slowest_stage"] == min(rates, key=lambda s: rates[s])
    assert data["denominator"]["value"] == pytest.approx(rates[details["slowest_stage"]], abs=1)
    assert {"python", "cpus"} <= data["env"].keys()
