"""Checks on asset fields, shared by the API schemas, the services and the CLI.

Example:
    >>> slugify("AMR 7"), slugify("Café line/2"), slugify("!!!")
    ('amr-7', 'cafe-line-2', 'device')
    >>> unique_id("amr-7", {"amr-7", "amr-7-2"})
    'amr-7-3'
    >>> parse_ttl("1h"), parse_ttl("90m"), parse_ttl("600")
    (3600, 5400, 600)
"""

from __future__ import annotations

import re
import unicodedata

from hub.auth.errors import InvalidInput
from hub.auth.principal import is_site_id

DEVICE_KINDS = ("robot", "gateway", "camera")
LABEL_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$"
MAX_LABELS = 32
MAX_LABEL_VALUE = 128
SLUG_BASE_LEN = 56  # leaves room for "-NNNNNN" under the 63 characters of a device id
MIN_TTL_S, MAX_TTL_S = 60, 7 * 86_400
_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def slugify(name: str, *, fallback: str = "device") -> str:
    """A device-id-shaped slug of a display name (ASCII letters, digits and '-')."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:SLUG_BASE_LEN]
    return slug.strip("-") or fallback


def unique_id(base: str, taken: set[str]) -> str:
    """`base`, or `base-2`, `base-3`, ... : the first not in `taken`."""
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def check_site_id(value: str, *, field: str = "id") -> str:
    """A site id: lowercase letters, digits and '-', at most 63."""
    if not is_site_id(value):
        raise InvalidInput(
            f"{value!r} is not a site id (lowercase letters, digits and '-', at most 63)",
            field=field,
        )
    return value


def check_name(value: str, *, field: str = "name") -> str:
    """A display name: 1 to 128 characters once trimmed."""
    text = value.strip()
    if not 1 <= len(text) <= 128:
        raise InvalidInput("a name has 1 to 128 characters", field=field)
    return text


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """At most 32 labels; keys like `zone` or `team.io/owner`, values up to 128 characters."""
    if len(labels) > MAX_LABELS:
        raise InvalidInput(f"at most {MAX_LABELS} labels", field="labels")
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key):
            raise InvalidInput(f"label key {key!r} must match {LABEL_KEY_PATTERN}", field="labels")
        if len(value) > MAX_LABEL_VALUE:
            raise InvalidInput(f"label {key!r}: value over 128 characters", field="labels")
    return labels


def parse_label(value: str) -> tuple[str, str]:
    """`key=value` from a `label` query parameter."""
    key, sep, wanted = value.partition("=")
    if not sep or not _LABEL_KEY.fullmatch(key):
        raise InvalidInput("label filter is key=value, e.g. zone=north", field="label")
    return key, wanted


def parse_ttl(value: str) -> int:
    """Seconds from `900`, `900s`, `30m`, `1h` or `2d`; 1 minute to 7 days."""
    match = _TTL.fullmatch(value.strip())
    if match is None:
        raise InvalidInput(f"ttl {value!r}: use e.g. 30m, 1h or 2d", field="ttl")
    return check_ttl(int(match.group(1)) * _UNITS[match.group(2)])


def check_ttl(seconds: int) -> int:
    """A token lifetime between 1 minute and 7 days."""
    if not MIN_TTL_S <= seconds <= MAX_TTL_S:
        raise InvalidInput("a token lives between 1 minute and 7 days", field="ttl")
    return seconds
