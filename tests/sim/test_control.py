"""The control endpoint of `outpost sim run`: faults in, robots out; and scenario faults."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from sim.control import ControlServer, Walk, robots, send_fault, walk_actor
from sim.errors import ScenarioError, SimError
from sim.scenario import Fault, scenario_from_dict
from tests.sim.support import scenario


async def test_faults_are_injected_and_bad_ones_refused_with_the_reason() -> None:
    injected: list[Fault] = []

    async def inject(fault: Fault) -> None:
        if fault.robot == "ghost":
            raise SimError("no robot 'ghost' (robots: r1)")
        injected.append(fault)

    def snapshot() -> dict[str, Any]:
        return {"robots": {"r1": {"velocity": {"linear": 0.0}}}}

    server = ControlServer(inject=inject, snapshot=snapshot, port=0)
    await server.start()
    try:
        cut = Fault(kind="link_cut", robot="r1", seconds=20)
        accepted = await asyncio.to_thread(send_fault, server.url, cut)
        assert accepted == {"kind": "link_cut", "robot": "r1", "seconds": 20.0}
        assert injected == [cut]
        with pytest.raises(SimError, match="no robot 'ghost'"):
            await asyncio.to_thread(send_fault, server.url, Fault(kind="link_cut", robot="ghost"))
        async with httpx.AsyncClient(base_url=server.url) as client:
            bad = await client.post("/faults", content=b'{"kind": "meteor"}')
            assert bad.status_code == 422
            assert "link_cut" in bad.json()["detail"]
            assert (await client.get("/nothing")).status_code == 404
        shown = await asyncio.to_thread(robots, server.url)
        assert shown["robots"]["r1"]["velocity"] == {"linear": 0.0}
    finally:
        await server.close()


async def test_actors_are_walked_and_unknown_ones_refused() -> None:
    walked: list[tuple[str, Walk]] = []

    async def inject(fault: Fault) -> None:
        raise AssertionError(fault)

    def walk(actor: str, where: Walk) -> None:
        if actor != "p1":
            raise KeyError(f"no actor {actor!r} (actors: p1)")
        walked.append((actor, where))

    server = ControlServer(inject=inject, snapshot=dict, walk=walk, port=0)
    await server.start()
    try:
        await asyncio.to_thread(walk_actor, server.url, "p1", (3.0, 4.0), (1.0, 2.0))
        await asyncio.to_thread(walk_actor, server.url, "p1", (5.0, 4.0))
        assert walked == [
            ("p1", Walk(to=(3.0, 4.0), from_=(1.0, 2.0))),
            ("p1", Walk(to=(5.0, 4.0))),
        ]
        with pytest.raises(SimError, match="no actor 'ghost'"):
            await asyncio.to_thread(walk_actor, server.url, "ghost", (1.0, 1.0))
        async with httpx.AsyncClient(base_url=server.url) as client:
            bad = await client.post("/actors/p1/walk", json={"to": [1.0]})
            assert bad.status_code == 422
    finally:
        await server.close()


def test_an_unreachable_run_is_one_clear_error() -> None:
    with pytest.raises(SimError, match="no `outpost sim run` answers"):
        send_fault("http://127.0.0.1:9", Fault(kind="broker_stop"))


def test_scenario_faults_are_validated() -> None:
    base = scenario().model_dump()
    ok = scenario_from_dict(
        {**base, "faults": [{"at_s": 5, "kind": "link_cut", "robot": "r1", "seconds": 20}]},
        source="s.yaml",
    )
    assert ok.faults[0].seconds == 20.0
    with pytest.raises(ScenarioError, match="no robot 'r9'"):
        scenario_from_dict({**base, "faults": [{"kind": "link_cut", "robot": "r9"}]}, source="s")
    with pytest.raises(ScenarioError, match="needs robot, metric, value"):
        scenario_from_dict({**base, "faults": [{"kind": "sensor_spike"}]}, source="s")
    with pytest.raises(ScenarioError, match=r"faults\.0\.kind"):
        scenario_from_dict({**base, "faults": [{"kind": "meteor"}]}, source="s")
