"""`outpost bench ws --json` at a small size: the printed shape, not the target (noisy machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

OUTPOST = str(Path(sys.executable).parent / "outpost")


@pytest.mark.timeout(120)
def test_bench_ws_prints_one_json_object_with_the_ratio() -> None:
    args = [OUTPOST, "bench", "ws", "--json", "--clients", "20", "--messages", "400"]
    args += ["--rounds", "1", "--window", "100", "--batch", "20"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=110, check=False)

    assert out.returncode in (0, 1), out.stderr[-3000:]
    data = json.loads(out.stdout)  # stdout holds the one object and nothing else
    assert data["name"] == "ws"
    assert data["target"] == ">= 0.5"
    assert data["ratio"] > 0
    assert out.returncode == (0 if data["passed"] else 1)
    assert data["numerator"]["unit"] == data["denominator"]["unit"] == "messages/server-CPU-s"
    details = data["details"]
    assert (details["clients"], details["messages"], details["batch"]) == (20, 400, 20)
    assert details["hub_wall_messages_per_s"] > 0
    assert details["baseline_wall_messages_per_s"] > 0
    assert details["message_bytes"] > 100
    assert {"python", "cpus"} <= data["env"].keys()
