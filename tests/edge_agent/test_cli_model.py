"""`edge-agent model list|activate|rollback`, with the agent stopped (the CLI does the work
and records it for the next start) and running (the CLI asks the agent and waits)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from edge_agent import cli_model
from edge_agent.config import load_settings
from edge_agent.files import write_atomic
from edge_agent.perception.model_store import ModelStore
from edge_agent.perception.models import ModelManager, ModelSection, manager_for
from protocol import ModelManifest, encode, public_key_to_text
from tests.edge_agent.model_rig import (
    DEVICE,
    HUB_KEY,
    OTHER_KEY,
    constant_model,
    manifest_for,
)

runner = CliRunner()
model_app = typer.Typer()
cli_model.register(model_app)


class Device:
    """A config file, a data dir, and signed manifests of local (file://) models."""

    def __init__(self, tmp_path: Path, *, hub_key: str | None = None) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "data"
        key = public_key_to_text(HUB_KEY.public_key()) if hub_key is None else hub_key
        self.config = tmp_path / "agent.toml"
        self.config.write_text(
            f'[device]\nid = "{DEVICE}"\ndata_dir = "{self.data_dir}"\n'
            f'[hub]\nurl = "http://127.0.0.1:9"\npublic_key = "{key}"\n'
        )

    def manifest(self, version: str, **kwargs: Any) -> Path:
        """A signed manifest file for a new model `version`; its artifact is a local file."""
        model = constant_model(self.tmp_path / "built" / f"{version}.onnx", tag=version)
        manifest = manifest_for(model.read_bytes(), url=model.as_uri(), version=version, **kwargs)
        return self.write(manifest, version)

    def write(self, manifest: ModelManifest, label: str) -> Path:
        path = self.tmp_path / f"manifest-{label}.json"
        path.write_bytes(encode(manifest))
        return path

    def run(self, *args: str) -> tuple[int, str]:
        result = runner.invoke(model_app, [*args, "--config", str(self.config)])
        return result.exit_code, result.output

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.data_dir / "models" / "state.json").read_text())
        return state

    def active(self) -> str | None:
        active = self.state()["active"]
        return active["version"] if isinstance(active, dict) else None

    def manager(self) -> ModelManager:
        return manager_for(load_settings(self.config), ModelSection(request_poll_s=0.02))


@pytest.fixture
def device(tmp_path: Path) -> Device:
    return Device(tmp_path)


# --- agent not running ---------------------------------------------------------------------


def test_list_says_when_nothing_is_installed(device: Device) -> None:
    code, output = device.run("list")
    assert code == 0
    assert "no model versions installed" in output
    code, output = device.run("list", "--json")
    assert (code, json.loads(output)) == (0, [])


def test_activate_list_and_roll_back_with_the_agent_stopped(device: Device) -> None:
    code, output = device.run("activate", "--manifest", str(device.manifest("1")))
    assert code == 0, output
    assert "model det 1 active" in output
    assert "the agent is not running; it will start with it" in output
    assert device.active() == "1"

    code, output = device.run("activate", "--manifest", str(device.manifest("2")))
    assert code == 0, output
    assert "previous: det 1" in output
    code, output = device.run("list", "--json")
    rows = {row["version"]: row for row in json.loads(output)}
    assert (rows["2"]["active"], rows["1"]["previous"]) == (True, True)
    code, output = device.run("list")
    assert "active" in output
    assert "previous" in output

    code, output = device.run("rollback")
    assert code == 0, output
    assert device.active() == "1"
    code, output = device.run("activate", "det", "2")
    assert code == 0, output
    assert device.active() == "2"
    code, output = device.run("activate", "det", "2")
    assert (code, "det 2 is already active" in output) == (0, True)


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("tampered", "refused (sha256_mismatch)"),
        ("other key", "refused (bad_signature)"),
        ("not installed", "refused (not_installed)"),
        ("no previous", "refused (no_previous)"),
    ],
)
def test_refusals_exit_1_with_the_reason_and_change_nothing(
    device: Device, case: str, says: str
) -> None:
    assert device.run("activate", "--manifest", str(device.manifest("1")))[0] == 0
    if case == "tampered":
        manifest = device.manifest("2")
        built = device.tmp_path / "built" / "2.onnx"
        built.write_bytes(b"\0" * len(built.read_bytes()))
        args = ["activate", "--manifest", str(manifest)]
    elif case == "other key":
        args = ["activate", "--manifest", str(device.manifest("2", key=OTHER_KEY))]
    elif case == "not installed":
        args = ["activate", "det", "9"]
    else:
        args = ["rollback"]
    code, output = device.run(*args)
    assert code == 1, output
    assert says in output
    assert "the model that was active stays active" in output
    assert device.active() == "1"
    assert not (device.data_dir / "models" / "versions" / "det" / "2").exists()


@pytest.mark.parametrize(
    "args",
    [[], ["det"], ["det", "1", "--manifest", "m.json"], ["--manifest", "/nonexistent/m.json"]],
)
def test_bad_usage_exits_2(device: Device, args: list[str]) -> None:
    code, _ = device.run("activate", *args)
    assert code == 2


def test_without_a_pinned_hub_key_the_cli_exits_2(tmp_path: Path) -> None:
    device = Device(tmp_path, hub_key="")
    code, output = device.run("activate", "--manifest", str(device.manifest("1")))
    assert code == 2
    assert "no hub key is pinned" in output


# --- agent running -------------------------------------------------------------------------


class RunningAgent:
    """A manager's `run()` loop in its own thread and event loop, and a fresh status file
    that makes `edge-agent status` (and so the CLI) see a running agent."""

    def __init__(self, device: Device, *, answer: bool = True) -> None:
        self.device, self.answer = device, answer
        self.manager = device.manager()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),))
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.manager.load_active()
        self._task = asyncio.create_task(self._serve(), name="models")
        self._ready.set()
        self._heartbeat = asyncio.create_task(self._beat(), name="status")
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        finally:
            self._heartbeat.cancel()

    async def _beat(self) -> None:
        """Refresh the status file, as the agent does every second."""
        while True:
            await asyncio.to_thread(self._write_status)
            await asyncio.sleep(1)

    def _write_status(self) -> None:
        status = {"pid": os.getpid(), "updated_at": time.time(), "device": DEVICE}
        write_atomic(self.device.data_dir / "status.json", json.dumps(status).encode())

    async def _serve(self) -> None:
        if self.answer:
            await self.manager.run()
        else:
            await asyncio.Event().wait()

    def __enter__(self) -> RunningAgent:
        self.device.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_status()
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._task is not None
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)
        (self.device.data_dir / "status.json").unlink()


@pytest.fixture
def agent(device: Device) -> Iterator[RunningAgent]:
    with RunningAgent(device) as running:
        yield running


def test_the_running_agent_swaps_the_model_for_the_cli(device: Device, agent: RunningAgent) -> None:
    code, output = device.run("activate", "--manifest", str(device.manifest("1")))
    assert code == 0, output
    assert f"the running agent (pid {os.getpid()}) now serves it" in output
    current = agent.manager.current
    assert current is not None
    assert current.ref.version == "1"

    assert device.run("activate", "--manifest", str(device.manifest("2")))[0] == 0
    code, output = device.run("rollback")
    assert code == 0, output
    current = agent.manager.current
    assert current is not None
    assert current.ref.version == "1"
    assert device.active() == "1"


def test_a_refusal_by_the_running_agent_is_reported_and_cleaned_up(device: Device) -> None:
    assert device.run("activate", "--manifest", str(device.manifest("1")))[0] == 0
    with RunningAgent(device) as agent:
        # The budget of the agent's process is what counts, not the CLI's.
        agent.manager.settings = ModelSection(latency_budget_ms=0.001, request_poll_s=0.02)
        code, output = device.run("activate", "--manifest", str(device.manifest("2")))
        assert code == 1, output
        assert "refused (over_latency_budget)" in output
        current = agent.manager.current
        assert current is not None
        assert current.ref.version == "1"
    assert ModelStore(device.data_dir / "models").scan()[0][0].manifest.version == "1"
    assert not (device.data_dir / "models" / "versions" / "det" / "2").exists()


def test_an_agent_that_does_not_answer_is_reported(device: Device) -> None:
    assert device.run("activate", "--manifest", str(device.manifest("1")))[0] == 0
    with RunningAgent(device, answer=False):
        code, output = device.run("rollback", "--wait", "1")
    assert code == 1
    assert "did not answer within 1 s" in output
    assert list((device.data_dir / "models" / "requests").iterdir()) == []
