"""The rollout state machine, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.registry.rollout import Observation, Policy, RolloutState, canary_devices, judge

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = Policy(health_window=timedelta(seconds=60), latency_factor=1.5, auto_promote=False)


def test_canary_is_the_first_ceil_share_by_id_and_at_least_one() -> None:
    ids = [f"amr-{i}" for i in (3, 1, 2, 5, 4)]
    assert canary_devices(ids, 50) == ["amr-1", "amr-2", "amr-3"]
    assert canary_devices(ids, 1) == ["amr-1"]
    assert canary_devices(ids, 100) == sorted(ids)


def test_canary_must_stay_active_for_the_health_window() -> None:
    active = [Observation("a", active=True), Observation("b", active=True)]
    first = judge(RolloutState.CANARY, active, canary_active_at=None, now=NOW, policy=POLICY)
    assert (first.action, first.canary_active_at) == ("wait", NOW)
    later = NOW + timedelta(seconds=59)
    assert (
        judge(RolloutState.CANARY, active, canary_active_at=NOW, now=later, policy=POLICY).action
        == "wait"
    )
    done = judge(
        RolloutState.CANARY,
        active,
        canary_active_at=NOW,
        now=NOW + timedelta(seconds=60),
        policy=POLICY,
    )
    assert done.action == "canary_healthy"


def test_one_canary_not_active_restarts_the_window() -> None:
    mixed = [Observation("a", active=True), Observation("b", active=False)]
    verdict = judge(RolloutState.CANARY, mixed, canary_active_at=NOW, now=NOW, policy=POLICY)
    assert (verdict.action, verdict.canary_active_at) == ("wait", None)


def test_auto_promote_promotes_a_healthy_canary() -> None:
    policy = Policy(timedelta(0), 1.5, auto_promote=True)
    active = [Observation("a", active=True)]
    assert (
        judge(RolloutState.CANARY, active, canary_active_at=None, now=NOW, policy=policy).action
        == "promote"
    )


def test_a_rejection_or_a_latency_regression_rolls_back_in_every_state() -> None:
    rejected = [
        Observation("a", active=True),
        Observation("b", active=False, rejected="sha256_mismatch"),
    ]
    slow = [Observation("a", active=True, latency_ms=40.0, baseline_ms=20.0)]
    fine = [Observation("a", active=True, latency_ms=25.0, baseline_ms=20.0)]
    for state in (RolloutState.CANARY, RolloutState.CANARY_HEALTHY, RolloutState.PROMOTED):
        verdict = judge(state, rejected, canary_active_at=None, now=NOW, policy=POLICY)
        assert verdict.action == "rollback"
        assert verdict.reason == "model_rejected by b: sha256_mismatch"
        slowed = judge(state, slow, canary_active_at=None, now=NOW, policy=POLICY)
        assert slowed.action == "rollback"
        assert (slowed.reason or "").startswith("latency_regression on a")
        assert judge(state, fine, canary_active_at=NOW, now=NOW, policy=POLICY).action != "rollback"


def test_promoted_completes_once_every_device_is_active() -> None:
    some = [Observation("a", active=True), Observation("b", active=False)]
    every = [Observation("a", active=True), Observation("b", active=True)]
    assert (
        judge(RolloutState.PROMOTED, some, canary_active_at=NOW, now=NOW, policy=POLICY).action
        == "wait"
    )
    assert (
        judge(RolloutState.PROMOTED, every, canary_active_at=NOW, now=NOW, policy=POLICY).action
        == "complete"
    )


def test_finished_rollouts_are_left_alone() -> None:
    rejected = [Observation("a", active=False, rejected="x")]
    for state in (RolloutState.COMPLETED, RolloutState.ROLLED_BACK):
        assert (
            judge(state, rejected, canary_active_at=None, now=NOW, policy=POLICY).action == "wait"
        )
