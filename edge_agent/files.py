"""Files written with their final mode from the first byte: secrets are never world-readable.

`os.open(..., O_CREAT | O_EXCL, 0o600)` sets the mode as the file is created, so
there is no moment where another user could open it (a later `chmod` would leave
one). Replacing goes through such a file and an atomic rename, so a reader sees
the old content or the new one, never half of it.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "secret.txt"
    >>> write_new(path, b"one")
    >>> write_atomic(path, b"two")
    >>> path.read_bytes(), oct(path.stat().st_mode & 0o777)
    (b'two', '0o600')
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
_CREATE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def write_new(path: Path, data: bytes, *, mode: int = PRIVATE_MODE) -> None:
    """Create `path` with `mode` (default 0600) and write `data`; `FileExistsError` if it exists."""
    fd = os.open(path, _CREATE_FLAGS, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # exactly `mode`, whatever the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def write_atomic(path: Path, data: bytes, *, mode: int = PRIVATE_MODE) -> None:
    """Atomically replace (or create) `path` with `data` and `mode` (0600 by default)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    write_new(tmp, data, mode=mode)
    try:
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def ensure_private_dir(path: Path) -> bool:
    """Create `path` (and parents) and set it to mode 0700; True if it was created."""
    created = not path.exists()
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR_MODE)
    return created


def group_or_other_bits(mode: int) -> int:
    """The permission bits of `mode` that give access to anyone but the owner."""
    return mode & 0o077
