"""Signed commands: accepted only when this device must execute them, refused with the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    Command,
    CommandRejected,
    CommandType,
    EstopParams,
    OverrideParams,
    PathPlanParams,
    RejectReason,
    ReleaseParams,
    Waypoint,
    accept_command,
    encode,
    generate_private_key,
    new_command,
    sign,
)
from tests.protocol.strategies import device_ids

HUB = generate_private_key()
OTHER = generate_private_key()
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=10)

PARAMS = {
    CommandType.ESTOP: EstopParams(reason="person in aisle 3"),
    CommandType.RELEASE: ReleaseParams(reason="aisle clear, checked on camera"),
    CommandType.OVERRIDE: OverrideParams(linear=0.3, angular=0.0, duration_s=2.0),
    CommandType.PATH_PLAN: PathPlanParams(
        waypoints=[Waypoint(x=1, y=2), Waypoint(x=3, y=4, theta=1.57)], speed=0.5, timeout_s=60
    ),
}


def signed(
    type_: CommandType = CommandType.RELEASE,
    device: str = "amr-7",
    key: Ed25519PrivateKey = HUB,
    issued: datetime = NOW,
) -> Command:
    return sign(
        new_command(device, type_, PARAMS[type_], issued_by="ana", now=issued, ttl=TTL), key
    )


def accept(data: bytes, *, now: datetime = NOW, seen: set[str] | None = None) -> Command:
    return accept_command(
        data, device_id="amr-7", hub_key=HUB.public_key(), now=now, seen=seen or set()
    )


def reason_of(data: bytes, **kwargs: Any) -> RejectReason:
    with pytest.raises(CommandRejected) as info:
        accept(data, **kwargs)
    return info.value.reason


@pytest.mark.parametrize("type_", list(PARAMS))
def test_a_good_command_is_accepted(type_: CommandType) -> None:
    cmd = signed(type_)
    assert accept(encode(cmd)) == cmd


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(list(PARAMS)))
def test_signed_by_another_key_is_refused(type_: CommandType) -> None:
    assert reason_of(encode(signed(type_, key=OTHER))) is RejectReason.BAD_SIGNATURE


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(list(PARAMS)), device_ids.filter(lambda d: d != "amr-7"))
def test_aimed_at_another_device_is_refused(type_: CommandType, device: str) -> None:
    assert reason_of(encode(signed(type_, device=device))) is RejectReason.WRONG_DEVICE


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([t for t in PARAMS if t is not CommandType.ESTOP]),
    st.floats(min_value=5.001, max_value=1e6),
)
def test_expired_is_refused_beyond_the_skew_allowance(type_: CommandType, late_s: float) -> None:
    cmd = signed(type_)
    now = cmd.expires_at + timedelta(seconds=late_s)
    assert reason_of(encode(cmd), now=now) is RejectReason.EXPIRED


def test_expiry_within_the_skew_allowance_is_accepted() -> None:
    cmd = signed()
    accept(encode(cmd), now=cmd.expires_at + timedelta(seconds=4.9))


def test_issued_in_the_future_is_refused() -> None:
    cmd = signed(issued=NOW + timedelta(seconds=30))
    assert reason_of(encode(cmd)) is RejectReason.NOT_YET_VALID


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=0, max_value=1e7))
def test_a_validly_signed_estop_is_accepted_however_late(late_s: float) -> None:
    cmd = signed(CommandType.ESTOP)
    assert accept(encode(cmd), now=cmd.expires_at + timedelta(seconds=late_s)) == cmd


@pytest.mark.parametrize("type_", list(PARAMS))
def test_replayed_is_refused(type_: CommandType) -> None:
    cmd = signed(type_)
    assert reason_of(encode(cmd), seen={cmd.cmd_id}) is RejectReason.REPLAYED


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["device", "type", "issued_by", "issued_at", "expires_at", "cmd_id"]),
    st.data(),
)
def test_any_tampered_field_breaks_the_signature(field: str, data: st.DataObject) -> None:
    cmd = signed(CommandType.OVERRIDE)
    raw = orjson.loads(encode(cmd))
    replacement = {
        "device": "amr-8",
        "type": "estop",
        "issued_by": "mallory",
        "issued_at": "2026-11-27T12:00:01Z",
        "expires_at": "2026-11-27T13:00:00Z",
        "cmd_id": "f" * 32,
    }[field]
    raw[field] = replacement
    if field == "type":
        raw["params"] = {"reason": "x"}
    assert reason_of(orjson.dumps(raw)) is RejectReason.BAD_SIGNATURE
    del data


def test_tampered_params_break_the_signature() -> None:
    raw = orjson.loads(encode(signed(CommandType.OVERRIDE)))
    raw["params"]["linear"] = 2.0
    assert reason_of(orjson.dumps(raw)) is RejectReason.BAD_SIGNATURE


def test_unknown_fields_from_a_newer_minor_are_covered_by_the_signature() -> None:
    cmd = new_command("amr-7", CommandType.ESTOP, EstopParams(), issued_by="a", now=NOW, ttl=TTL)
    raw = {**cmd.model_dump(mode="json", exclude_none=True), "v": "1.4", "priority": "high"}
    from protocol import sign_object

    raw["sig"] = sign_object(raw, HUB)
    assert accept(orjson.dumps(raw)).v == "1.4"
    raw["priority"] = "low"
    assert reason_of(orjson.dumps(raw)) is RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", RejectReason.MALFORMED),
        (b'{"v":"1.0"}', RejectReason.MALFORMED),
        (b'{"v":"2.0","cmd_id":"abc"}', RejectReason.UNSUPPORTED_VERSION),
    ],
)
def test_malformed_commands_are_refused(payload: bytes, reason: RejectReason) -> None:
    assert reason_of(payload) is reason


def test_unsigned_command_is_refused() -> None:
    cmd = new_command("amr-7", CommandType.ESTOP, EstopParams(), issued_by="a", now=NOW, ttl=TTL)
    assert reason_of(encode(cmd)) is RejectReason.BAD_SIGNATURE


def test_params_must_match_type() -> None:
    raw = orjson.loads(encode(signed(CommandType.RELEASE)))
    raw["type"] = "override"
    assert reason_of(orjson.dumps(raw)) is RejectReason.MALFORMED


def test_release_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        ReleaseParams(reason="")


def test_rejection_carries_the_cmd_id_for_the_ack() -> None:
    cmd = signed(key=OTHER)
    with pytest.raises(CommandRejected) as info:
        accept(encode(cmd))
    assert info.value.cmd_id == cmd.cmd_id
