"""The device's Ed25519 identity: a private key file readable by its owner only.

The key is created once, at install, with mode 0600 from the first byte. Loading
refuses a key that group or others could read (someone could impersonate the
device) and anything that is not an Ed25519 key, with a message that says how
to fix it. Beside the key, `device.pub` records the public key that was enrolled,
so a re-run of `edge-agent install` can tell that the key still matches.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "device.key"
    >>> key, created = load_or_create_key(path)
    >>> created, load_key(path).public_key() == key.public_key()
    (True, True)
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.errors import AgentError
from edge_agent.files import group_or_other_bits, write_atomic, write_new
from protocol.errors import SignatureError
from protocol.signing import (
    generate_private_key,
    private_key_from_pem,
    private_key_to_pem,
    public_key_to_text,
)

MAX_KEY_FILE_BYTES = 64 << 10


class IdentityError(AgentError):
    """The device key is missing, unsafe or not an Ed25519 key."""


def public_key_path(key_path: Path) -> Path:
    """Where the enrolled public key is recorded, beside the private key."""
    return key_path.with_suffix(".pub")


def public_text(key: Ed25519PrivateKey) -> str:
    """The public half of `key` as the hub sees it (unpadded base64url)."""
    return public_key_to_text(key.public_key())


def create_key(path: Path) -> Ed25519PrivateKey:
    """Create a new key at `path` (mode 0600); `IdentityError` if a file is already there."""
    key = generate_private_key()
    try:
        write_new(path, private_key_to_pem(key))
    except FileExistsError:
        raise IdentityError(
            f"{path}: a key file already exists; refusing to overwrite it"
        ) from None
    except OSError as exc:
        raise IdentityError(f"{path}: cannot create the device key: {exc}") from exc
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    """Load the key at `path`; refuse one that group/others can read or that is not Ed25519."""
    data = _read_owner_only(path)
    try:
        return private_key_from_pem(data)
    except SignatureError as exc:
        raise IdentityError(
            f"{path}: not an Ed25519 device key ({exc}); remove it and run `edge-agent install` "
            "again (the device will need a new enrollment token)"
        ) from exc


def load_or_create_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The key at `path`, created if there is none; the flag says whether it was created."""
    if path.exists() or path.is_symlink():
        return load_key(path), False
    return create_key(path), True


def record_public_key(key_path: Path, key: Ed25519PrivateKey) -> None:
    """Write `device.pub` beside the key: the public key the hub enrolled."""
    write_atomic(public_key_path(key_path), (public_text(key) + "\n").encode("ascii"))


def recorded_public_key(key_path: Path) -> str | None:
    """The enrolled public key recorded beside `key_path`, or None if there is none."""
    try:
        return public_key_path(key_path).read_text(encoding="ascii").strip() or None
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _read_owner_only(path: Path) -> bytes:
    """Read a regular file that only its owner can access (no symlinks followed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise IdentityError(f"{path}: no device key; run `edge-agent install`") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IdentityError(f"{path}: the device key is a symbolic link; refusing") from None
        raise IdentityError(f"{path}: cannot open the device key: {exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        _check_mode(path, info)
        return handle.read(MAX_KEY_FILE_BYTES)


def _check_mode(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise IdentityError(f"{path}: the device key is not a regular file")
    if info.st_uid != os.geteuid():
        raise IdentityError(
            f"{path}: the device key belongs to uid {info.st_uid}, not to the user running "
            f"the agent (uid {os.geteuid()})"
        )
    loose = group_or_other_bits(info.st_mode)
    if loose:
        raise IdentityError(
            f"{path}: the device key is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); anyone who reads it can impersonate "
            f"this device. Fix with `chmod 600 {path}`"
        )
