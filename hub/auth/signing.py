"""The hub's Ed25519 command-signing key: `DATA_DIR/hub-signing.key` (PEM, mode 0600).

Created on first use; every API process of one hub must use the same file (share
the data directory). Agents pin its public half at enrollment, so replacing the
file means re-enrolling every device.

Example:
    >>> import tempfile
    >>> from protocol.signing import public_key_to_text
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     first = load_or_create_signing_key(Path(tmp))
    ...     again = load_or_create_signing_key(Path(tmp))
    ...     oct((Path(tmp) / SIGNING_KEY_FILE).stat().st_mode & 0o777)
    '0o600'
    >>> public_key_to_text(first.public_key()) == public_key_to_text(again.public_key())
    True
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.errors import HubConfigError
from protocol.errors import SignatureError
from protocol.signing import generate_private_key, private_key_from_pem, private_key_to_pem

logger = logging.getLogger(__name__)

SIGNING_KEY_FILE = "hub-signing.key"


def load_or_create_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """The key kept in `data_dir`, created when missing; refused when others can read it."""
    path = data_dir / SIGNING_KEY_FILE
    if not path.exists():
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise HubConfigError(f"{path}: readable by others (mode {mode:o}); run: chmod 600 {path}")
    try:
        return private_key_from_pem(path.read_bytes())
    except SignatureError as exc:
        raise HubConfigError(f"{path}: not the hub's signing key: {exc}") from None


def _create(path: Path) -> None:
    """Write a new key atomically: a private temp file, hard-linked into place."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{SIGNING_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(private_key_to_pem(generate_private_key()))
        try:
            os.link(tmp, path)
            logger.info("generated the hub's command-signing key in %s", path)
        except FileExistsError:
            pass  # another process won the race; use its key
    finally:
        tmp.unlink(missing_ok=True)
