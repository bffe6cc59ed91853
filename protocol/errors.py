"""The exception tree of the wire contract.

Every error Outpost raises on purpose derives from `OutpostError`; each package
adds its own branch (`ProtocolError` here, `AgentError` in the agent, `HubError` in
the hub). `retriable` tells retry loops whether trying again can help, so they
need no long `except` lists.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class OutpostError(Exception):
    """Root of every error Outpost raises on purpose."""

    retriable: ClassVar[bool] = False


class ProtocolError(OutpostError):
    """Root of the wire contract's errors: bad topics, payloads, versions, signatures."""


class TopicError(ProtocolError):
    """A topic or device id outside the grammar `outpost/v1/{device_id}/{channel}`."""


class DecodeError(ProtocolError):
    """A payload that is not a valid message: not JSON, wrong shape, wrong types, too large."""


class EncodeError(ProtocolError):
    """A message that cannot be put on the wire (for example a string with lone surrogates)."""


class VersionError(DecodeError):
    """A message whose `v` names a major version this reader does not speak."""


class SignatureError(ProtocolError):
    """A signature that is missing, malformed or does not verify with the pinned key."""


class RejectReason(StrEnum):
    """Why a device refused a command; sent back in the `rejected` ack."""

    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported_version"
    BAD_SIGNATURE = "bad_signature"
    WRONG_DEVICE = "wrong_device"
    REPLAYED = "replayed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


class CommandRejected(ProtocolError):
    """A command the device must not execute, with the precise reason.

    Example:
        >>> err = CommandRejected(RejectReason.EXPIRED, "expired 12.0 s ago", cmd_id="c1")
        >>> err.reason.value
        'expired'
    """

    def __init__(self, reason: RejectReason, detail: str, *, cmd_id: str | None = None) -> None:
        super().__init__(f"command {cmd_id or '?'} rejected ({reason.value}): {detail}")
        self.reason = reason
        self.detail = detail
        self.cmd_id = cmd_id
