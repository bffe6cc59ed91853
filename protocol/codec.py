"""Bytes on the wire: JSON through orjson, with one error type for every bad payload.

Decoding never raises anything but `DecodeError` (or its `VersionError`), whatever
the bytes: truncated, not UTF-8, wrong types, NaN, too large, too deep.

Example:
    >>> from protocol.models import Watermark
    >>> from datetime import UTC, datetime
    >>> wm = Watermark(device="amr-7", stream="s1", seq=9, at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> decode(encode(wm), Watermark) == wm
    True
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from protocol.errors import DecodeError, EncodeError
from protocol.models import MAX_MESSAGE_BYTES, Command, Envelope
from protocol.version import check_version

M = TypeVar("M", bound=BaseModel)


def encode(message: BaseModel) -> bytes:
    """Serialise a wire model to compact JSON bytes (None-valued optional fields omitted)."""
    return dumps(message.model_dump(mode="json", exclude_none=True))


def dumps(obj: Any, *, sort_keys: bool = False) -> bytes:
    """orjson.dumps with the protocol's error type."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise EncodeError(f"cannot encode message: {exc}") from exc


def loads_object(data: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Parse a JSON object, enforcing the size limit; raise `DecodeError` otherwise."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise DecodeError(f"payload of {len(data)} bytes exceeds the {MAX_MESSAGE_BYTES} limit")
    try:
        obj = orjson.loads(data)
    except (orjson.JSONDecodeError, RecursionError) as exc:
        raise DecodeError(f"payload is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise DecodeError(f"payload must be a JSON object, got {type(obj).__name__}")
    return obj


def validate(obj: dict[str, Any], model: type[M]) -> M:
    """Validate a parsed object as `model`; check `v` first when the model has one."""
    if "v" in model.model_fields:
        check_version(obj.get("v"))
    try:
        return model.model_validate(obj)
    except (ValidationError, RecursionError) as exc:
        raise DecodeError(f"invalid {model.__name__}: {_summary(exc)}") from exc


def decode(data: bytes | bytearray | memoryview | str, model: type[M]) -> M:
    """Parse and validate bytes as `model`."""
    return validate(loads_object(data), model)


def decode_envelope(data: bytes | bytearray | memoryview | str) -> Envelope:
    """Parse an uplink message."""
    return decode(data, Envelope)


def decode_command(data: bytes | bytearray | memoryview | str) -> Command:
    """Parse a command without checking its signature (see `protocol.commands`)."""
    return decode(data, Command)


def _summary(exc: Exception, limit: int = 3) -> str:
    if not isinstance(exc, ValidationError):
        return type(exc).__name__
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)[:limit]
    ]
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
