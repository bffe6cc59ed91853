"""`outpost bench estop --json` against the dev Mosquitto, at a small size.

Asserts the printed shape, not the target: the machine is shared and noisy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

OUTPOST = str(Path(sys.executable).parent / "outpost")


@pytest.mark.timeout(120)
def test_bench_estop_prints_one_json_object_with_the_ratio(mqtt_url: str) -> None:
    args = [OUTPOST, "bench", "estop", "--json", "--trials", "5", "--round-trips", "20"]
    out = subprocess.run(
        [*args, "--mqtt-url", mqtt_url], capture_output=True, text=True, timeout=110, check=False
    )

    assert out.returncode in (0, 1), out.stderr[-3000:]
    data = json.loads(out.stdout)
    assert data["name"] == "estop"
    assert data["target"] == "<= 3.0"
    assert out.returncode == (0 if data["passed"] else 1)
    assert data["numerator"]["unit"] == data["denominator"]["unit"] == "ms"
    assert 0 < data["denominator"]["value"] < data["numerator"]["value"] * 100
    assert data["details"]["load_msgs_per_s"] == 1000
    assert data["details"]["robot"] == "ros"  # the zero Twist at a ROS 2 node, by default
    assert data["details"]["estop_p50_ms"] <= data["details"]["estop_max_ms"]
