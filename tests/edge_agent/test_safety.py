"""The safety supervisor's rules, with a hand-driven clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.safety import Drive, FollowPath, SafetyStore, SafetySupervisor, Stop
from protocol import Command, CommandType, KnownEvent
from protocol.models import Mode, OverrideParams, PathPlanParams, StopSource, Waypoint

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def override(cmd_id: str = "c-1", duration_s: float = 2.0) -> Command:
    return Command(
        cmd_id=cmd_id,
        device="amr-1",
        type=CommandType.OVERRIDE,
        params=OverrideParams(linear=0.5, angular=0.0, duration_s=duration_s),
        issued_by="op",
        issued_at=T0,
        expires_at=at(30),
    )


def path(cmd_id: str = "p-1") -> Command:
    return Command(
        cmd_id=cmd_id,
        device="amr-1",
        type=CommandType.PATH_PLAN,
        params=PathPlanParams(waypoints=[Waypoint(x=1, y=2)], speed=0.4, timeout_s=60),
        issued_by="op",
        issued_at=T0,
        expires_at=at(30),
    )


def alive(s: SafetySupervisor, t: float) -> list[object]:
    """Tick with a healthy link and heartbeat; the actions it returned."""
    return list(s.tick(at(t), link_seen=at(t), heartbeat_seen=at(t)).actions)


def test_the_stop_latches_and_refuses_motion_until_released() -> None:
    s = SafetySupervisor(SafetyStore(None))
    engaged = s.engage(StopSource.HUB, "operator", at(0))
    assert engaged.actions == (Stop("operator"),)
    assert [e.type for e in engaged.events] == [KnownEvent.ESTOP_ENGAGED]
    assert s.mode is Mode.STOPPED

    refused = s.motion(override(), at(1))
    assert not refused.accepted
    assert refused.actions == ()
    assert "stop engaged" in refused.reason
    assert [e.type for e in refused.events] == [KnownEvent.COMMAND_REJECTED]

    released = s.release("r-1", "clear", at(2))
    assert released.accepted
    assert [e.type for e in released.events] == [KnownEvent.ESTOP_RELEASED]
    assert s.motion(override(), at(3)).actions == (Drive("c-1", 0.5, 0.0, at(5)),)


def test_engaging_twice_stops_again_but_reports_once() -> None:
    s = SafetySupervisor(SafetyStore(None))
    s.engage(StopSource.LOCAL, "cli", at(0))
    again = s.engage(StopSource.HUB, "operator", at(1))
    assert again.actions == (Stop("operator"),)
    assert again.events == ()
    assert s.status.source is StopSource.LOCAL  # the first cause is kept


def test_a_local_condition_blocks_release_while_it_holds() -> None:
    s = SafetySupervisor(SafetyStore(None))
    s.set_condition("zone:dock", "person in danger zone", at(0))
    assert s.status.engaged
    refused = s.release("r-1", "operator says clear", at(1))
    assert not refused.accepted
    assert "person in danger zone" in refused.reason
    s.set_condition("zone:dock", None, at(2))
    assert s.status.engaged, "the condition ending does not release the latch"
    assert s.release("r-2", "clear", at(3)).accepted
    assert not s.status.engaged


def test_override_stops_by_itself_when_its_duration_lapses() -> None:
    s = SafetySupervisor(SafetyStore(None))
    s.motion(override(duration_s=2.0), at(0))
    assert alive(s, 1.9) == []
    lapsed = s.tick(at(2.0), link_seen=at(2.0), heartbeat_seen=at(2.0))
    assert lapsed.actions == (Stop("deadline lapsed"),)
    assert [e.type for e in lapsed.events] == [KnownEvent.DEADLINE_STOP]
    assert not s.status.engaged
    assert s.mode is Mode.IDLE


def test_silent_link_or_heartbeat_while_moving_engages_the_stop() -> None:
    for link, heartbeat, what in ((at(0), at(4), "hub link"), (at(4), at(2.5), "heartbeat")):
        s = SafetySupervisor(SafetyStore(None), link_timeout_s=3, heartbeat_timeout_s=1)
        s.motion(path(), at(0))
        decision = s.tick(at(4), link_seen=link, heartbeat_seen=heartbeat)
        assert decision.actions
        assert isinstance(decision.actions[0], Stop)
        assert s.status.engaged
        assert s.status.source is StopSource.WATCHDOG
        assert what in (s.status.reason or "")
        assert KnownEvent.WATCHDOG_STOP in [e.type for e in decision.events]


def test_the_next_check_is_when_the_first_deadline_or_watchdog_lapses() -> None:
    s = SafetySupervisor(SafetyStore(None), link_timeout_s=1, heartbeat_timeout_s=2)
    assert s.next_due(link_seen=at(0), heartbeat_seen=at(0)) is None  # idle: nothing is due
    s.motion(override(duration_s=5.0), at(0))
    link_lost = s.next_due(link_seen=at(0.3), heartbeat_seen=at(0.5))
    assert link_lost is not None
    assert at(1.3) < link_lost <= at(1.302)  # just after the silence exceeds the timeout
    assert not s.tick(at(1.3), link_seen=at(0.3), heartbeat_seen=at(1.3)).actions
    assert s.tick(link_lost, link_seen=at(0.3), heartbeat_seen=at(1.3)).actions
    s.release("r-1", "clear", at(2))
    s.motion(override("c-2", duration_s=0.5), at(3))
    assert s.next_due(link_seen=at(3), heartbeat_seen=at(3)) == at(3.5)  # the deadline


def test_watchdogs_sleep_while_idle() -> None:
    s = SafetySupervisor(SafetyStore(None), link_timeout_s=3)
    assert s.tick(at(100), link_seen=None, heartbeat_seen=None).actions == ()
    assert not s.status.engaged


def test_a_finished_path_needs_no_more_supervision() -> None:
    s = SafetySupervisor(SafetyStore(None))
    assert isinstance(s.motion(path(), at(0)).actions[0], FollowPath)
    s.finished("p-1")
    assert s.tick(at(100), link_seen=None, heartbeat_seen=None).actions == ()


def test_restarted_while_stopped_comes_back_stopped(tmp_path: Path) -> None:
    store = SafetyStore(tmp_path / "safety.json")
    s = SafetySupervisor(store)
    s.set_condition("hw", "hardware e-stop pressed", at(0), source=StopSource.HARDWARE)
    again = SafetySupervisor(SafetyStore(tmp_path / "safety.json"))
    assert again.status.engaged
    assert again.status.source is StopSource.HARDWARE
    assert again.conditions == {"hw": "hardware e-stop pressed"}
    assert not again.motion(override(), at(1)).accepted


def test_unreadable_state_starts_stopped(tmp_path: Path) -> None:
    (tmp_path / "safety.json").write_text("{not json")
    s = SafetySupervisor(SafetyStore(tmp_path / "safety.json"))
    assert s.status.engaged
    assert s.status.reason == "safety state unreadable"
