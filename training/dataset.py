"""YOLO datasets: a `data.yaml`, its splits' images and their label files.

Both layouts Ultralytics reads are understood: the classic one
(`path: ROOT`, `train: images/train`, labels in `labels/train`) and a Roboflow YOLO
export (`train: ../train/images` beside `train/labels`, resolved, as Ultralytics does,
against the folder of `data.yaml` with the leading `../` dropped when the literal path
does not exist). A split may be a folder (searched recursively), an image, a `.txt`
list of images (relative lines are relative to the list's folder), or a list of these.

    >>> dataset = load_dataset(Path("datasets/shapes/data.yaml"))  # doctest: +SKIP
    >>> dataset.names, {name: len(s.images) for name, s in dataset.splits.items()}  # doctest: +SKIP
    (('red_box', 'green_ellipse'), {'train': 48, 'val': 16})
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from training.errors import TrainingError

IMAGE_SUFFIXES = frozenset({".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})
SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "val")
_CHUNK = 1 << 20


class DatasetError(TrainingError):
    """A dataset that cannot be read at all: missing or bad `data.yaml`, missing split."""


@dataclass(frozen=True)
class Split:
    """One split: where it was declared and the images it holds, sorted."""

    name: str
    sources: tuple[Path, ...]  # the folders, images or list files named in data.yaml
    images: tuple[Path, ...]


@dataclass(frozen=True)
class Dataset:
    """A loaded `data.yaml`: its root, class names and splits."""

    yaml_path: Path
    root: Path
    names: tuple[str, ...]
    splits: Mapping[str, Split]

    def images(self) -> list[Path]:
        """Every image of every split, once, sorted."""
        return sorted({image for split in self.splits.values() for image in split.images})

    def relative(self, path: Path) -> str:
        """`path` relative to the dataset root where it lies below it, else absolute."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def sha256(self) -> str:
        """A digest of the images and label files, as `dataset_sha256` describes."""
        files = set(self.images())
        files |= {label_path(image) for image in files if label_path(image).is_file()}
        return dataset_sha256(files, self.root)


def label_path(image: Path) -> Path:
    """The label file Ultralytics reads for `image`: the last `/images/` becomes `/labels/`.

    >>> label_path(Path("/d/images/train/a.jpg")).as_posix()
    '/d/labels/train/a.txt'
    >>> label_path(Path("/d/train/images/x.y.png")).as_posix()
    '/d/train/labels/x.y.txt'
    """
    text = os.fspath(image)
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(labels.join(text.rsplit(images, 1))).with_suffix(".txt")


def dataset_sha256(files: Iterable[Path], root: Path) -> str:
    """SHA-256 over files sorted by path: for each, its path relative to `root`, a NUL byte,
    and the SHA-256 of its contents. Renaming, editing, adding or removing a file changes it.
    """
    relative = sorted((_relative(path, root), path) for path in files)
    digest = hashlib.sha256()
    for name, path in relative:
        digest.update(name.encode() + b"\0" + _file_sha256(path))
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's contents, hex."""
    return _file_sha256(path).hex()


def _file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.digest()


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


# --- data.yaml -----------------------------------------------------------------------------


def find_data_yaml(path: Path) -> Path:
    """`path` itself when a file, else the `data.yaml` (or `data.yml`) inside the folder."""
    if path.is_dir():
        for name in ("data.yaml", "data.yml"):
            if (path / name).is_file():
                return path / name
        raise DatasetError(f"{path}: no data.yaml in this folder")
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    return path


def load_dataset(path: Path) -> Dataset:
    """Read a `data.yaml` (or the folder holding one) and list each split's images.

    Raises `DatasetError` naming the file and the key when the dataset cannot be used.
    """
    yaml_path = find_data_yaml(path).resolve()
    document = _read_yaml(yaml_path)
    names = parse_names(yaml_path, document)
    root = _root(yaml_path, document)
    splits = {}
    for name in SPLITS:
        if document.get(name) is None:
            if name in REQUIRED_SPLITS:
                raise DatasetError(f"{yaml_path}: key {name!r} is missing (a folder of images)")
            continue
        splits[name] = _split(yaml_path, root, name, document[name])
    return Dataset(yaml_path, root, names, splits)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise DatasetError(f"{path}: expected a mapping with train, val and names keys")
    return document


def parse_names(yaml_path: Path, document: Mapping[str, Any]) -> tuple[str, ...]:
    """Class names from `names` (a list, or a mapping 0..n-1), checked against `nc` if given."""
    raw = document.get("names")
    if isinstance(raw, list):
        raw = dict(enumerate(raw))
    if not isinstance(raw, dict) or not raw:
        raise DatasetError(f"{yaml_path}: key 'names' must be a non-empty list or mapping")
    if sorted(raw, key=repr) != sorted(range(len(raw)), key=repr):
        raise DatasetError(f"{yaml_path}: 'names' keys must be 0..{len(raw) - 1}")
    names = tuple(str(raw[i]).strip() for i in range(len(raw)))
    if not all(names):
        raise DatasetError(f"{yaml_path}: 'names' has an empty class name")
    nc = document.get("nc")
    if nc is not None and nc != len(names):
        raise DatasetError(f"{yaml_path}: 'nc' is {nc} but 'names' lists {len(names)} classes")
    return names


def _root(yaml_path: Path, document: Mapping[str, Any]) -> Path:
    raw = document.get("path")
    if raw is None:
        return yaml_path.parent
    if not isinstance(raw, str):
        raise DatasetError(f"{yaml_path}: key 'path' must be a folder name")
    root = Path(raw).expanduser()
    root = root if root.is_absolute() else yaml_path.parent / root
    if not root.is_dir():
        raise DatasetError(f"{yaml_path}: 'path' {raw!r} is not a folder ({root})")
    return root.resolve()


def _split(yaml_path: Path, root: Path, name: str, raw: object) -> Split:
    entries = [e for e in (raw if isinstance(raw, list) else [raw]) if isinstance(e, str) and e]
    if not entries or len(entries) != (len(raw) if isinstance(raw, list) else 1):
        raise DatasetError(f"{yaml_path}: key {name!r} must be a path or a list of paths")
    sources = tuple(_source(yaml_path, root, name, entry) for entry in entries)
    images = sorted({image for source in sources for image in _images(yaml_path, source)})
    return Split(name, sources, tuple(images))


def _source(yaml_path: Path, root: Path, name: str, entry: str) -> Path:
    path = Path(entry).expanduser()
    candidates = [path] if path.is_absolute() else [root / path]
    if entry.startswith("../"):
        candidates.append(root / entry[3:])  # Roboflow exports: ../train/images
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    tried = " or ".join(str(c) for c in candidates)
    raise DatasetError(f"{yaml_path}: {name!r} is {entry!r}, which does not exist ({tried})")


def _images(yaml_path: Path, source: Path) -> Iterator[Path]:
    if source.is_dir():
        yield from (p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    elif source.suffix.lower() in IMAGE_SUFFIXES:
        yield source
    elif source.suffix.lower() == ".txt":
        for line in source.read_text(encoding="utf-8").splitlines():
            if line.strip():
                image = Path(line.strip())
                yield (image if image.is_absolute() else source.parent / image).resolve()
    else:
        raise DatasetError(f"{yaml_path}: {source} is neither a folder, an image nor a .txt list")
