"""Model artifacts on local disk, one file per sha256: `DIR/<sha256>.onnx`.

An upload is streamed into a private temporary file in the same directory while
its sha256 and size are computed and the size is capped; `keep` then moves it to
its final name (atomic on one filesystem). The same bytes pushed twice share one
file. The store never re-hashes on download: agents check the sha256 and the
hub's signature themselves, which is what makes a tampered file harmless.

Example:
    store = ArtifactStore(Path("/var/lib/outpost-hub/models"), max_bytes=512 << 20)
    staged = await store.stage(upload.read)   # chunks from the request
    path = await store.keep(staged)           # DIR/<sha256>.onnx
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from hub.errors import HubError

CHUNK_BYTES = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")

Reader = Callable[[int], Awaitable[bytes]]
"""Reads up to n bytes; b"" at the end (`UploadFile.read`)."""


class UploadTooLarge(HubError):
    """The upload is larger than `[registry] max_upload_bytes`."""


@dataclass(frozen=True, slots=True)
class Staged:
    """An upload on disk under a temporary name, with its digest and size."""

    path: Path
    sha256: str
    size: int


class ArtifactStore:
    """A directory of artifacts named by sha256 (see the module docstring)."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root, self.max_bytes = root, max_bytes

    def path_of(self, sha256: str) -> Path | None:
        """The artifact's file, or None when it is not (or no longer) here."""
        if not _SHA256.fullmatch(sha256):
            return None
        path = self.root / f"{sha256}.onnx"
        return path if path.is_file() else None

    async def stage(self, read: Reader) -> Staged:
        """Stream an upload to a temporary file; `UploadTooLarge` past the cap."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True, mode=0o700)
        path = self.root / f".upload-{os.getpid()}-{secrets.token_hex(6)}"
        digest, size = hashlib.sha256(), 0
        handle = await asyncio.to_thread(path.open, "wb")
        try:
            while chunk := await read(CHUNK_BYTES):
                size += len(chunk)
                self._check_size(size)
                digest.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
        except BaseException:
            await asyncio.to_thread(handle.close)
            path.unlink(missing_ok=True)
            raise
        await asyncio.to_thread(handle.close)
        return Staged(path, digest.hexdigest(), size)

    def _check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise UploadTooLarge(
                f"the upload exceeds [registry] max_upload_bytes ({self.max_bytes} bytes)"
            )

    async def keep(self, staged: Staged) -> Path:
        """Move a staged upload to `DIR/<sha256>.onnx` (an identical file may be there)."""
        final = self.root / f"{staged.sha256}.onnx"
        await asyncio.to_thread(os.replace, staged.path, final)
        return final

    @staticmethod
    def discard(staged: Staged) -> None:
        """Delete a staged upload that was refused."""
        with contextlib.suppress(OSError):
            staged.path.unlink()
