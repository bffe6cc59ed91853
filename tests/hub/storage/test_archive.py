"""The raw-telemetry archive: one gzip file per UTC day and device, appended atomically."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hub.storage import archive
from hub.storage.archive import append_points, archive_path, read_points


def point(seq: int, ts: datetime, device: str = "amr-1") -> dict[str, object]:
    return {
        "device": device,
        "stream": "s1",
        "seq": seq,
        "idx": 0,
        "ts": ts,
        "metric": "cpu",
        "value": seq / 2,
        "tags": {"site": "north"},
    }


T = datetime(2026, 1, 1, 23, 59, 59, tzinfo=UTC)


def test_points_are_split_by_utc_day_and_device(tmp_path: Path) -> None:
    files = append_points(
        tmp_path, [point(1, T), point(2, T + timedelta(seconds=1)), point(3, T, "amr-2")]
    )
    assert files == sorted(
        [
            archive_path(tmp_path, "amr-1", "2026-01-01"),
            archive_path(tmp_path, "amr-1", "2026-01-02"),
            archive_path(tmp_path, "amr-2", "2026-01-01"),
        ]
    )
    (line,) = read_points(files[0])
    assert line == {
        "device": "amr-1",
        "stream": "s1",
        "seq": 1,
        "idx": 0,
        "ts": "2026-01-01T23:59:59+00:00",
        "metric": "cpu",
        "value": 0.5,
        "tags": {"site": "north"},
    }


def test_appending_keeps_earlier_points_and_plain_gzip_reads_them(tmp_path: Path) -> None:
    append_points(tmp_path, [point(1, T)])
    (path,) = append_points(tmp_path, [point(2, T), point(3, T)])
    assert [p["seq"] for p in read_points(path)] == [1, 2, 3]
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        assert len(handle.read().splitlines()) == 3


def test_a_failed_write_leaves_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (path,) = append_points(tmp_path, [point(1, T)])
    before = path.read_bytes()

    def fail(_fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(archive.os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        append_points(tmp_path, [point(2, T)])
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_days_are_utc_days(tmp_path: Path) -> None:
    late_evening_in_new_york = datetime(2026, 1, 1, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    utc = late_evening_in_new_york.astimezone(UTC)
    (path,) = append_points(tmp_path, [point(1, utc)])
    assert path.parent.name == "2026-01-02"


def test_nothing_to_archive_writes_nothing(tmp_path: Path) -> None:
    assert append_points(tmp_path / "a", []) == []
    assert not (tmp_path / "a").exists()
