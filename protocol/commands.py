"""Command acceptance as pure functions: what an agent must refuse, and why.

`accept_command` checks, in order: well-formed JSON and shape, protocol version,
the hub's signature (over the message as received), the target device, replay
by `cmd_id`, and validity in time with a clock-skew allowance. A validly signed
`estop` aimed at this device is accepted even when expired or early: stopping is
always safe. The caller records accepted `cmd_id`s in its replay cache.

Example:
    >>> from datetime import UTC, datetime, timedelta
    >>> from protocol.models import EstopParams
    >>> from protocol.signing import generate_private_key, sign
    >>> from protocol.codec import encode
    >>> key = generate_private_key()
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> cmd = sign(new_command("amr-7", CommandType.ESTOP, EstopParams(), issued_by="op",
    ...                        now=now, ttl=timedelta(seconds=5)), key)
    >>> accept_command(encode(cmd), device_id="amr-7", hub_key=key.public_key(),
    ...                now=now, seen=set()).type.value
    'estop'
"""

from __future__ import annotations

import uuid
from collections.abc import Container
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.codec import loads_object, validate
from protocol.errors import (
    CommandRejected,
    DecodeError,
    RejectReason,
    SignatureError,
    VersionError,
)
from protocol.models import Command, CommandParams, CommandType
from protocol.signing import verify_object

DEFAULT_CLOCK_SKEW = timedelta(seconds=5)


def new_command(
    device: str,
    type_: CommandType,
    params: CommandParams,
    *,
    issued_by: str,
    now: datetime,
    ttl: timedelta,
) -> Command:
    """An unsigned command with a fresh `cmd_id`, valid from `now` for `ttl`."""
    return Command(
        cmd_id=uuid.uuid4().hex,
        device=device,
        type=type_,
        params=params,
        issued_by=issued_by,
        issued_at=now,
        expires_at=now + ttl,
    )


def accept_command(
    data: bytes | bytearray | memoryview | str,
    *,
    device_id: str,
    hub_key: Ed25519PublicKey,
    now: datetime,
    seen: Container[str],
    skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> Command:
    """Return the command if this device must execute it, else raise `CommandRejected`."""
    cmd_id = None
    try:
        raw = loads_object(data)
        cmd_id = raw.get("cmd_id") if isinstance(raw.get("cmd_id"), str) else None
        cmd = validate(raw, Command)
    except VersionError as exc:
        raise CommandRejected(RejectReason.UNSUPPORTED_VERSION, str(exc), cmd_id=cmd_id) from exc
    except DecodeError as exc:
        raise CommandRejected(RejectReason.MALFORMED, str(exc), cmd_id=cmd_id) from exc
    try:
        verify_object(raw, hub_key)
    except SignatureError as exc:
        raise CommandRejected(RejectReason.BAD_SIGNATURE, str(exc), cmd_id=cmd.cmd_id) from exc
    check_fresh(cmd, device_id=device_id, now=now, seen=seen, skew=skew)
    return cmd


def check_fresh(
    cmd: Command,
    *,
    device_id: str,
    now: datetime,
    seen: Container[str],
    skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> None:
    """The checks after the signature: target device, replay, and time window."""
    if cmd.device != device_id:
        raise CommandRejected(
            RejectReason.WRONG_DEVICE,
            f"aimed at {cmd.device}, this is {device_id}",
            cmd_id=cmd.cmd_id,
        )
    if cmd.cmd_id in seen:
        raise CommandRejected(RejectReason.REPLAYED, "cmd_id already seen", cmd_id=cmd.cmd_id)
    if cmd.type is CommandType.ESTOP:
        return
    if now > cmd.expires_at + skew:
        late = (now - cmd.expires_at).total_seconds()
        raise CommandRejected(RejectReason.EXPIRED, f"expired {late:.1f} s ago", cmd_id=cmd.cmd_id)
    if cmd.issued_at > now + skew:
        early = (cmd.issued_at - now).total_seconds()
        raise CommandRejected(
            RejectReason.NOT_YET_VALID,
            f"issued {early:.1f} s in the future (clock skew?)",
            cmd_id=cmd.cmd_id,
        )
