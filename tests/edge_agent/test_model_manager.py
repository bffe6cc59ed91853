"""The model manager: signed manifests and assignments are downloaded from a real HTTP
server, checked, loaded with real onnxruntime and swapped in; every refusal leaves the
old model serving and says why; rollback survives a restart."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from edge_agent.config import settings_from_dict
from edge_agent.perception.model_fetch import FetchError, HttpFetcher
from edge_agent.perception.model_store import (
    ModelRejected,
    ModelRequest,
    ModelStore,
    ModelUnavailable,
    Refusal,
    read_result,
    submit_request,
)
from edge_agent.perception.models import ModelManager, ModelSection, manager_for
from protocol import Event, KnownEvent, Severity, public_key_to_text
from tests.edge_agent.model_rig import (
    DEVICE,
    HUB_KEY,
    OTHER_KEY,
    PASSWORD,
    USERNAME,
    ArtifactServer,
    assignment_for,
    constant_model,
    manifest_for,
)
from tests.edge_agent.ultralytics_model import CLASSES as YOLO_CLASSES
from tests.edge_agent.ultralytics_model import IMGSZ

FRAME = np.full((480, 640, 3), 90, dtype=np.uint8)


@pytest.fixture
def server() -> Iterator[ArtifactServer]:
    with ArtifactServer() as running:
        yield running


class Rig:
    """A manager on a temporary data dir, its events, and models served by `server`."""

    def __init__(self, tmp_path: Path, server: ArtifactServer) -> None:
        self.tmp_path, self.server = tmp_path, server
        self.events: list[Event] = []
        self.data_dir = tmp_path / "data"

    def manager(self, **overrides: Any) -> ModelManager:
        section = overrides.pop("section", ModelSection(latency_budget_ms=10_000))
        fetcher = HttpFetcher(
            username=overrides.pop("username", USERNAME),
            password=PASSWORD,
            retries=overrides.pop("retries", 1),
            backoff_initial_s=0.01,
            allow_file=overrides.pop("allow_file", False),
        )
        return ModelManager(
            self.data_dir,
            hub_key=overrides.pop("hub_key", HUB_KEY.public_key()),
            settings=section,
            device_id=DEVICE,
            fetcher=fetcher,
            on_event=self.events.append,
            **overrides,
        )

    def model(self, version: str, **kwargs: Any) -> tuple[bytes, str]:
        """Bytes of a constant model unique to `version`, served at /models/det/VERSION."""
        path = constant_model(self.tmp_path / "built" / f"{version}.onnx", tag=version, **kwargs)
        data = path.read_bytes()
        return data, self.server.serve(f"/models/det/{version}", data)

    def assignment(self, version: str, **kwargs: Any) -> bytes:
        data, url = self.model(version)
        return assignment_for(manifest_for(data, url=url, version=version, **kwargs))

    def rejections(self) -> list[dict[str, Any]]:
        return [dict(e.detail) for e in self.events if e.type == KnownEvent.MODEL_REJECTED]


@pytest.fixture
def rig(tmp_path: Path, server: ArtifactServer) -> Rig:
    return Rig(tmp_path, server)


async def serving(rig: Rig, version: str = "1") -> ModelManager:
    """A manager serving `version`, activated from a hub assignment."""
    manager = rig.manager()
    await manager.load_active()
    await manager.activate(rig.assignment(version))
    return manager


def assert_still_serving(manager: ModelManager, version: str) -> None:
    current = manager.current
    assert current is not None
    assert current.ref.version == version
    assert [o.cls for o in current.detector.detect(FRAME).objects] == ["person"]
    assert manager.state.active == current.ref


# --- activation ----------------------------------------------------------------------------


async def test_a_signed_assignment_is_downloaded_checked_and_swapped_in(rig: Rig) -> None:
    manager = rig.manager()
    assert await manager.load_active() is None
    data, url = rig.model("1")
    activation = await manager.activate(assignment_for(manifest_for(data, url=url)))

    assert activation.changed
    assert activation.previous is None
    assert activation.latency_ms is not None
    assert activation.latency_ms > 0
    assert_still_serving(manager, "1")
    assert manager.current is not None
    assert manager.current.baseline == {"class_hist": [0.5, 0.5]}  # drift is measured against it
    assert manager.ref is not None
    assert manager.ref.sha256 == hashlib.sha256(data).hexdigest()
    folder = rig.data_dir / "models" / "versions" / "det" / "1"
    assert (folder / "model.onnx").read_bytes() == data
    stored = orjson.loads((folder / "manifest.json").read_bytes())
    assert stored["sig"]
    assert stored["url"] == url
    state = orjson.loads((rig.data_dir / "models" / "state.json").read_bytes())
    assert state["active"]["version"] == "1"
    assert state["previous"] is None
    auth = {r["auth"] for r in rig.server.requests}
    assert len(auth) == 1
    assert auth.pop().startswith("Basic ")
    [event] = rig.events
    assert event.type == KnownEvent.MODEL_ACTIVATED
    assert event.detail["version"] == "1"
    assert event.detail["sha256"] == manager.ref.sha256
    assert not list((rig.data_dir / "models" / "incoming").iterdir())


async def test_a_second_version_becomes_active_and_the_first_previous(rig: Rig) -> None:
    manager = await serving(rig, "1")
    activation = await manager.activate(rig.assignment("2"))
    assert activation.previous is not None
    assert activation.previous.version == "1"
    assert_still_serving(manager, "2")
    assert manager.state.previous == activation.previous
    assert rig.events[-1].detail["previous"] == "det 1"


async def test_the_same_model_again_changes_nothing(rig: Rig) -> None:
    manager = await serving(rig, "1")
    before, requests = manager.current, len(rig.server.requests)
    data = (rig.data_dir / "models" / "versions" / "det" / "1" / "model.onnx").read_bytes()
    again = await manager.activate(manifest_for(data, url=rig.server.base + "/models/det/1"))
    assert not again.changed
    assert manager.current is before
    assert len(rig.server.requests) == requests


@pytest.mark.parametrize(
    ("case", "refusal", "says"),
    [
        ("tampered bytes", Refusal.SHA256_MISMATCH, "hash to sha256"),
        ("signed by another key", Refusal.BAD_SIGNATURE, "does not verify"),
        ("manifest changed after signing", Refusal.BAD_SIGNATURE, "does not verify"),
        ("assignment signed by another key", Refusal.BAD_SIGNATURE, "does not verify"),
        ("unsigned", Refusal.BAD_SIGNATURE, "not signed"),
        ("wrong output shape", Refusal.OUTPUT_SHAPE, "fits no known layout"),
        ("other classes", Refusal.MANIFEST_MISMATCH, "classes"),
        ("other input size", Refusal.MANIFEST_MISMATCH, "input [160, 160]"),
        ("another device", Refusal.WRONG_DEVICE, "for amr-9"),
        ("404", Refusal.DOWNLOAD_FAILED, "HTTP 404"),
        ("bad credentials", Refusal.DOWNLOAD_FAILED, "refused the device's credentials"),
        ("larger than the manifest", Refusal.DOWNLOAD_FAILED, "the manifest says"),
        ("shorter than the manifest", Refusal.SIZE_MISMATCH, "the manifest says"),
        ("file url from the hub", Refusal.DOWNLOAD_FAILED, "only for local activation"),
        ("path in the name", Refusal.MALFORMED, "model name '../x'"),
        ("not json", Refusal.MALFORMED, "not valid JSON"),
    ],
)
async def test_refusals_keep_the_old_model_serving_and_say_why(
    rig: Rig, case: str, refusal: Refusal, says: str
) -> None:
    manager = await serving(rig, "1")
    payload = bad_assignment(rig, case)
    if case == "bad credentials":
        manager = rig.manager(username="intruder")
        await manager.load_active()
    with pytest.raises(ModelRejected) as caught:
        await manager.activate(payload)

    assert caught.value.refusal is refusal
    assert says in caught.value.detail
    assert_still_serving(manager, "1")
    [rejected] = rig.rejections()
    assert rejected["reason"] == refusal.value
    assert says in rejected["detail"]
    assert rig.events[-1].severity is Severity.WARNING
    if case not in ("not json", "path in the name"):
        assert (rejected["name"], rejected["version"]) == ("det", "2")
    assert not (rig.data_dir / "models" / "versions" / "det" / "2").exists()
    assert not list((rig.data_dir / "models" / "incoming").iterdir())


def bad_assignment(rig: Rig, case: str) -> bytes:
    data, url = rig.model("2")
    if case == "tampered bytes":
        rig.server.files["/models/det/2"] = data[:-1] + bytes([data[-1] ^ 1])
    elif case == "wrong output shape":
        data, url = rig.model("2", output=np.zeros((1, 7, 10), np.float32))
    elif case == "404":
        url = rig.server.base + "/models/det/missing"
    elif case == "larger than the manifest":
        rig.server.files["/models/det/2"] = data + b"more"
    elif case == "shorter than the manifest":
        rig.server.files["/models/det/2"] = data[:-4]
    elif case == "file url from the hub":
        url = (rig.tmp_path / "built" / "2.onnx").as_uri()
    changes: dict[str, dict[str, Any]] = {
        "signed by another key": {"key": OTHER_KEY},
        "other classes": {"classes": ["person", "pallet"]},
        "other input size": {"input_size": (320, 320)},
        "path in the name": {"name": "../x"},
    }
    fields = changes.get(case, {})
    manifest = manifest_for(data, url=url, version="2", **fields)
    if case == "manifest changed after signing":
        manifest = manifest.model_copy(update={"url": url + "?evil"})
    if case == "unsigned":
        manifest = manifest.model_copy(update={"sig": ""})
    if case == "not json":
        return b"{not json"
    if case == "another device":
        return assignment_for(manifest, device="amr-9")
    if case == "assignment signed by another key":
        return assignment_for(manifest, key=OTHER_KEY)
    return assignment_for(manifest)


async def test_a_model_over_the_latency_budget_is_refused(rig: Rig) -> None:
    manager = await serving(rig, "1")
    strict = rig.manager(section=ModelSection(latency_budget_ms=0.001))
    await strict.load_active()
    with pytest.raises(ModelRejected) as caught:
        await strict.activate(rig.assignment("2"))
    assert caught.value.refusal is Refusal.OVER_LATENCY_BUDGET
    assert "over the 0.001 ms budget" in caught.value.detail
    assert_still_serving(strict, "1")
    assert manager.state.active == strict.state.active


async def test_without_a_pinned_hub_key_nothing_is_activated(rig: Rig) -> None:
    manager = rig.manager(hub_key=None)
    with pytest.raises(ModelRejected) as caught:
        await manager.activate(rig.assignment("1"))
    assert caught.value.refusal is Refusal.NO_HUB_KEY
    assert manager.current is None
    assert rig.server.requests == []


async def test_a_storage_failure_is_a_refusal(rig: Rig) -> None:
    manager = await serving(rig, "1")
    incoming = rig.data_dir / "models" / "incoming"
    incoming.rmdir()
    incoming.write_text("not a folder")  # the download has nowhere to go
    with pytest.raises(ModelRejected) as caught:
        await manager.activate(rig.assignment("2"))
    assert caught.value.refusal is Refusal.STORAGE_FAILED
    assert rig.rejections()[0]["reason"] == "storage_failed"
    assert_still_serving(manager, "1")


async def test_a_version_never_changes_its_bytes(rig: Rig) -> None:
    manager = await serving(rig, "1")
    other = constant_model(rig.tmp_path / "other.onnx", tag="other").read_bytes()
    url = rig.server.serve("/other", other)
    with pytest.raises(ModelRejected) as caught:
        await manager.activate(manifest_for(other, url=url, version="1"))
    assert caught.value.refusal is Refusal.VERSION_CONFLICT
    assert_still_serving(manager, "1")
    assert (rig.data_dir / "models" / "versions" / "det" / "1").is_dir()


async def test_a_newly_signed_manifest_for_installed_bytes_reuses_them(rig: Rig) -> None:
    manager = await serving(rig, "1")
    await manager.activate(rig.assignment("2"))
    folder = rig.data_dir / "models" / "versions" / "det" / "1"
    data, requests = (folder / "model.onnx").read_bytes(), len(rig.server.requests)
    resigned = manifest_for(data, url=rig.server.base + "/elsewhere", version="1")
    activation = await manager.activate(resigned)
    assert activation.active.version == "1"
    assert len(rig.server.requests) == requests  # no download
    assert orjson.loads((folder / "manifest.json").read_bytes())["url"].endswith("/elsewhere")
    assert_still_serving(manager, "1")


async def test_a_busy_server_is_retried_and_a_down_one_reported_as_retriable(rig: Rig) -> None:
    manager = rig.manager(retries=2)
    rig.server.fail_next = 2
    await manager.activate(rig.assignment("1"))
    assert len(rig.server.requests) == 3
    rig.server.fail_next = 3
    with pytest.raises(ModelUnavailable) as caught:
        await manager.activate(rig.assignment("2"))
    assert caught.value.retriable
    assert "HTTP 503" in caught.value.detail
    assert_still_serving(manager, "1")


async def test_a_network_failure_is_retriable(rig: Rig) -> None:
    fetcher = HttpFetcher(retries=1, backoff_initial_s=0.01, timeout_s=2)
    data, _ = rig.model("1")
    closed = rig.server.base.rsplit(":", 1)[0] + ":9"  # discard port: nothing listens
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(f"{closed}/x", rig.tmp_path / "x", max_bytes=len(data))
    assert caught.value.retriable


async def test_a_relative_url_is_fetched_from_the_hub(rig: Rig) -> None:
    data, _ = rig.model("1")
    fetcher = HttpFetcher(base_url=rig.server.base + "/api/", username=USERNAME, password=PASSWORD)
    await fetcher.fetch("/models/det/1", rig.tmp_path / "got", max_bytes=len(data))
    assert (rig.tmp_path / "got").read_bytes() == data


# --- no frame lost ---------------------------------------------------------------------------


async def test_a_good_model_swaps_between_two_frames(rig: Rig, tiny_yolo_onnx: Path) -> None:
    manager = await serving(rig, "1")
    data = await asyncio.to_thread(tiny_yolo_onnx.read_bytes)
    url = rig.server.serve("/models/yolo/2", data)
    manifest = manifest_for(
        data, url=url, name="yolo", version="2", classes=YOLO_CLASSES, input_size=(IMGSZ, IMGSZ)
    )
    seen: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def pipeline() -> None:  # what the agent's frame loop does: read `current` once per frame
        while not stop.is_set():
            model = manager.current
            assert model is not None
            try:
                model.detector.detect(FRAME)
            except BaseException as exc:
                errors.append(exc)
            seen.append(model.ref.name)

    thread = threading.Thread(target=pipeline)
    thread.start()
    try:
        started = time.perf_counter()
        activation = await manager.activate(assignment_for(manifest))
        took = time.perf_counter() - started
        await wait_for(lambda: seen.count("yolo") >= 3)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    switch = seen.index("yolo")
    assert switch > 0
    assert seen == ["det"] * switch + ["yolo"] * (len(seen) - switch)  # one switch, no gap
    assert activation.active.name == "yolo"
    print(
        f"tiny YOLO activation took {took:.2f} s (median {activation.latency_ms or 0:.1f} ms), "
        f"{switch} frames served by the old model meanwhile"
    )


# --- rollback and restarts -------------------------------------------------------------------


async def test_rollback_goes_back_and_survives_a_restart(rig: Rig) -> None:
    manager = await serving(rig, "1")
    await manager.activate(rig.assignment("2"))
    back = await manager.rollback()
    assert back.active.version == "1"
    assert back.previous is not None
    assert back.previous.version == "2"
    assert_still_serving(manager, "1")
    assert rig.events[-1].type == KnownEvent.MODEL_ACTIVATED

    restarted = rig.manager()
    loaded = await restarted.load_active()
    assert loaded is not None
    assert loaded.ref.version == "1"
    forward = await restarted.rollback()
    assert forward.active.version == "2"
    assert_still_serving(restarted, "2")


async def test_rollback_without_a_previous_version_is_refused(rig: Rig) -> None:
    manager = await serving(rig, "1")
    with pytest.raises(ModelRejected) as caught:
        await manager.rollback()
    assert caught.value.refusal is Refusal.NO_PREVIOUS
    assert_still_serving(manager, "1")


async def test_rollback_refuses_a_previous_version_changed_on_disk(rig: Rig) -> None:
    manager = await serving(rig, "1")
    await manager.activate(rig.assignment("2"))
    path = rig.data_dir / "models" / "versions" / "det" / "1" / "model.onnx"
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelRejected) as caught:
        await manager.rollback()
    assert caught.value.refusal is Refusal.SHA256_MISMATCH
    assert_still_serving(manager, "2")


async def test_a_start_falls_back_to_the_previous_model(rig: Rig) -> None:
    manager = await serving(rig, "1")
    await manager.activate(rig.assignment("2"))
    (rig.data_dir / "models" / "versions" / "det" / "2" / "model.onnx").write_bytes(b"garbage")
    rig.events.clear()

    restarted = rig.manager()
    loaded = await restarted.load_active()
    assert loaded is not None
    assert loaded.ref.version == "1"
    assert [e.type for e in rig.events] == [KnownEvent.MODEL_REJECTED, KnownEvent.MODEL_ACTIVATED]
    assert rig.rejections()[0]["reason"] == Refusal.SIZE_MISMATCH.value
    assert restarted.state.active == loaded.ref
    assert restarted.state.previous is None


async def test_a_start_with_a_corrupt_state_serves_nothing_and_says_so(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await serving(rig, "1")
    (rig.data_dir / "models" / "state.json").write_text("{not json")
    restarted = rig.manager()
    assert await restarted.load_active() is None
    assert "is corrupt" in caplog.text
    activation = await restarted.activate_installed("det", "1")  # the files are still there
    assert activation.active.version == "1"


async def test_old_versions_are_pruned(rig: Rig) -> None:
    manager = rig.manager(section=ModelSection(latency_budget_ms=10_000, keep_versions=0))
    for version in ("1", "2", "3"):
        await manager.activate(rig.assignment(version))
    store = ModelStore(rig.data_dir / "models")
    installed, problems = store.scan()
    assert sorted(m.manifest.version for m in installed) == ["2", "3"]
    assert problems == []


# --- the agent's loop ----------------------------------------------------------------------


async def test_a_retained_assignment_is_handled_once(rig: Rig) -> None:
    manager = rig.manager(section=ModelSection(latency_budget_ms=10_000, request_poll_s=0.01))
    await manager.load_active()
    good = rig.assignment("1")
    async with asyncio.TaskGroup() as tg:
        loop = tg.create_task(manager.run(), name="models")
        await manager.receive(good)  # what the downlink hook calls
        await wait_for(lambda: manager.current is not None)
        manager.offer(good)  # a reconnect delivers the retained copy again
        await asyncio.sleep(0.1)
        bad = bad_assignment(rig, "tampered bytes")
        manager.offer(bad)
        await wait_for(lambda: len(rig.rejections()) == 1)
        manager.offer(bad)
        await asyncio.sleep(0.1)
        loop.cancel()
    assert [e.type for e in rig.events] == [KnownEvent.MODEL_ACTIVATED, KnownEvent.MODEL_REJECTED]
    assert_still_serving(manager, "1")

    restarted = rig.manager()  # the handled assignment is remembered across a restart
    await restarted.load_active()
    await restarted._assigned(bad)
    assert len(rig.rejections()) == 1


async def test_a_cleared_assignment_changes_nothing_and_reports_nothing(rig: Rig) -> None:
    """A rollback on a device the hub never assigned a model before clears the retained
    topic: an empty message, which is no assignment and no malformed one either."""
    manager = rig.manager(section=ModelSection(latency_budget_ms=10_000))
    await manager.load_active()
    await manager._assigned(rig.assignment("1"))
    await manager._assigned(b"")
    assert [e.type for e in rig.events] == [KnownEvent.MODEL_ACTIVATED]
    assert_still_serving(manager, "1")


async def test_requests_from_the_cli_are_answered(rig: Rig) -> None:
    manager = rig.manager(section=ModelSection(latency_budget_ms=10_000, request_poll_s=0.01))
    await manager.activate(rig.assignment("1"))
    await manager.activate(rig.assignment("2"))
    await manager.load_active()
    store = manager.store
    async with asyncio.TaskGroup() as tg:
        loop = tg.create_task(manager.run(), name="models")
        rollback = submit_request(store, ModelRequest(action="rollback"))
        missing = submit_request(store, ModelRequest(action="activate", name="det", version="9"))
        await wait_for(lambda: rollback.exists() and missing.exists())
        loop.cancel()
    done, refused = read_result(rollback), read_result(missing)
    assert done is not None
    assert done.ok
    assert done.active is not None
    assert done.active.version == "1"
    assert refused is not None
    assert not refused.ok
    assert refused.refusal is Refusal.NOT_INSTALLED
    assert_still_serving(manager, "1")


async def wait_for(condition: Any, limit_s: float = 20.0) -> None:
    """Poll `condition` until it holds (the loops under test have no event to wait on)."""
    async with asyncio.timeout(limit_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_the_agents_manager_uses_its_settings(rig: Rig) -> None:
    settings = settings_from_dict(
        {
            "device": {"id": DEVICE, "data_dir": str(rig.data_dir)},
            "hub": {"url": rig.server.base, "public_key": public_key_to_text(HUB_KEY.public_key())},
            "mqtt": {"username": USERNAME, "password": PASSWORD},
        },
        source="test",
    )
    manager = manager_for(settings, ModelSection(latency_budget_ms=10_000))
    data, _ = rig.model("1")
    relative = manifest_for(data, url="/models/det/1")  # the hub's URL is the base
    await manager.activate(assignment_for(relative))
    assert_still_serving(manager, "1")
    with pytest.raises(ModelRejected) as caught:
        await manager.activate(assignment_for(relative, device="amr-9"))
    assert caught.value.refusal is Refusal.WRONG_DEVICE
