"""The protocol version `v` and the rule for reading other versions.

`v` is `"MAJOR.MINOR"`. Within one major version, a minor release only adds
optional fields, new event types and new enum members at the end of open sets;
it never removes, renames or retypes a field. A reader therefore:

- accepts every message of its own major version, whatever the minor;
- ignores fields it does not know (written by a newer minor);
- refuses a different major version with `VersionError`.

Signatures are computed over the message as received (canonical JSON of the
raw object), so fields a reader ignores are still covered by the signature.
"""

from __future__ import annotations

import re

from protocol.errors import VersionError

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0
PROTOCOL_VERSION = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
_VERSION_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})$")


def check_version(value: object) -> tuple[int, int]:
    """Return `(major, minor)` if this reader speaks `value`, else raise `VersionError`.

    Example:
        >>> check_version("1.7")
        (1, 7)
    """
    match = _VERSION_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise VersionError(f"protocol version must look like '1.0', got {value!r:.40}")
    major, minor = int(match.group(1)), int(match.group(2))
    if major != PROTOCOL_MAJOR:
        raise VersionError(
            f"protocol version {value} not supported: this reader speaks {PROTOCOL_MAJOR}.x"
        )
    return major, minor
