"""The raw-telemetry archive: gzip-compressed JSON lines, one file per UTC day and device.

Layout: `ARCHIVE_DIR/telemetry/YYYY-MM-DD/DEVICE.jsonl.gz`; one line per point
`{"device", "stream", "seq", "idx", "ts", "metric", "value", "tags"}`. Each write
appends one complete gzip member (readers such as `gzip.open` and `zcat` read
the members as one stream) and replaces the file atomically: the data is written
to a temporary file beside it, fsynced, then renamed over the old one, under an
exclusive lock, so a crash or a concurrent writer never leaves a damaged file.
Archiving is at least once: a retention run that archived and then failed to
commit its delete archives the same points again next time; `(device, stream,
seq, idx)` identifies duplicates.

Example:
    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> root = Path(tempfile.mkdtemp())
    >>> point = {"device": "amr-7", "stream": "s1", "seq": 1, "idx": 0, "metric": "cpu",
    ...          "ts": datetime(2026, 1, 2, 3, 4, tzinfo=UTC), "value": 0.5, "tags": {}}
    >>> [p.relative_to(root).as_posix() for p in append_points(root, [point])]
    ['telemetry/2026-01-02/amr-7.jsonl.gz']
    >>> read_points(root / "telemetry/2026-01-02/amr-7.jsonl.gz")[0]["ts"]
    '2026-01-02T03:04:00+00:00'
"""

from __future__ import annotations

import fcntl
import gzip
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

Point = Mapping[str, Any]


def archive_path(root: Path, device: str, day: str) -> Path:
    """Where the points of `device` on UTC day `day` (YYYY-MM-DD) are archived."""
    return root / "telemetry" / day / f"{device}.jsonl.gz"


def _day(ts: datetime) -> str:
    return ts.date().isoformat()  # callers pass UTC datetimes


def _encode(point: Point) -> bytes:
    return orjson.dumps(dict(point)) + b"\n"


def append_points(root: Path, points: Iterable[Point]) -> list[Path]:
    """Append `points` to their day-and-device files; return the files written (blocking I/O)."""
    groups: dict[Path, list[bytes]] = defaultdict(list)
    for point in points:
        path = archive_path(root, point["device"], _day(point["ts"]))
        groups[path].append(_encode(point))
    if not groups:
        return []
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        for path, lines in groups.items():
            _append_member(path, gzip.compress(b"".join(lines), mtime=0))
    return sorted(groups)


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    with (root / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _append_member(path: Path, member: bytes) -> None:
    """Old content + `member` into a temporary file, fsync, atomic rename, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            if path.exists():
                with path.open("rb") as old:
                    shutil.copyfileobj(old, out)
            out.write(member)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_points(path: Path) -> list[dict[str, Any]]:
    """Every point of one archive file, in the order written."""
    with gzip.open(path, "rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]
