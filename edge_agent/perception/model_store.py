"""Model versions on disk, which one is active, and requests from `edge-agent model`.

Layout under `{data_dir}/models/`:

    state.json                         {active, previous, assignment}: replaced atomically
    versions/NAME/VERSION/model.onnx   the artifact, as downloaded
    versions/NAME/VERSION/manifest.json  the hub-signed manifest, as received
    incoming/PID-TOKEN.part            downloads in progress
    requests/request-ID.json           `edge-agent model` asking the running agent
    requests/result-ID.json            ... and its answer

A version appears under `versions/` in one rename of a complete folder, so it is
there whole or not at all. Its bytes and signature are checked again every time it
is loaded, so a file changed or torn on disk is refused, not run.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> store = ModelStore(Path(tempfile.mkdtemp()) / "models")
    >>> store.read_state().active is None, store.scan()
    (True, ([], []))
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from edge_agent.errors import AgentError
from edge_agent.files import write_atomic
from protocol.codec import dumps, loads_object, validate
from protocol.errors import DecodeError
from protocol.models import ModelManifest, ModelRef

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
"""Model names and versions become folder names: no separators, no leading dot."""


class Refusal(StrEnum):
    """Why a model was not activated; the `reason` of a `model_rejected` event."""

    NO_HUB_KEY = "no_hub_key"
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    WRONG_DEVICE = "wrong_device"
    VERSION_CONFLICT = "version_conflict"
    NOT_INSTALLED = "not_installed"
    NO_PREVIOUS = "no_previous"
    NO_SPACE = "no_space"
    STORAGE_FAILED = "storage_failed"
    DOWNLOAD_FAILED = "download_failed"
    SIZE_MISMATCH = "size_mismatch"
    SHA256_MISMATCH = "sha256_mismatch"
    LOAD_FAILED = "load_failed"
    MANIFEST_MISMATCH = "manifest_mismatch"
    OUTPUT_SHAPE = "output_shape"
    WARM_UP_FAILED = "warm_up_failed"
    OVER_LATENCY_BUDGET = "over_latency_budget"


class ModelRejected(AgentError):
    """A model that will not be activated, with the reason; the old model keeps serving.

    Example:
        >>> err = ModelRejected(Refusal.SHA256_MISMATCH, "bytes differ", name="yolo", version="2")
        >>> str(err)
        'model yolo 2 rejected (sha256_mismatch): bytes differ'
    """

    def __init__(
        self,
        refusal: Refusal,
        detail: str,
        *,
        name: str | None = None,
        version: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.refusal, self.detail = refusal, detail
        self.name, self.version = name, version

    def __str__(self) -> str:
        which = " ".join(part for part in (self.name, self.version) if part) or "?"
        return f"model {which} rejected ({self.refusal.value}): {self.detail}"


class ModelUnavailable(ModelRejected):
    """A rejection that may pass if tried again later (the download failed on the network)."""

    retriable = True


class ModelState(BaseModel):
    """`state.json`: the active version, the one before it, and the last assignment handled."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    active: ModelRef | None = None
    previous: ModelRef | None = None
    assignment: str | None = None
    """Signature of the last hub assignment handled, so a retained one is not redone."""
    updated_at: AwareDatetime | None = None


@dataclass(frozen=True, slots=True)
class InstalledModel:
    """A version on disk: its manifest (as received, and parsed) and its folder."""

    manifest: ModelManifest
    raw: dict[str, Any]
    directory: Path

    @property
    def model_path(self) -> Path:
        """The ONNX file."""
        return self.directory / MODEL_FILE

    @property
    def ref(self) -> ModelRef:
        """Name, version and sha256 as the wire names them."""
        m = self.manifest
        return ModelRef(name=m.name, version=m.version, sha256=m.sha256)

    @property
    def installed_at(self) -> datetime:
        """When the version's folder appeared."""
        return datetime.fromtimestamp(self.directory.stat().st_mtime, UTC)


def check_names(name: str, version: str) -> None:
    """Refuse a name or version that cannot be a folder name (`ModelRejected`)."""
    for label, value in (("name", name), ("version", version)):
        if not SAFE_NAME.match(value):
            raise ModelRejected(
                Refusal.MALFORMED,
                f"model {label} {value[:130]!r} must be letters, digits, '.', '_', '+' or '-', "
                "starting with a letter or digit (at most 128)",
                name=name[:128],
                version=version[:128],
            )


def file_digest(path: Path) -> tuple[int, str]:
    """Size and sha256 (hex) of a file. Blocks."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


class ModelStore:
    """The model folders of one agent (see the module docstring). Its methods block."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = root / "versions"
        self.incoming = root / "incoming"
        self.requests = root / "requests"
        self.state_path = root / "state.json"

    # --- state ---------------------------------------------------------------------------

    def read_state(self) -> ModelState:
        """The saved state; a missing file is no model, an unreadable one is logged and empty."""
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            return ModelState()
        except OSError as exc:
            logger.warning(
                "model state %s unreadable (%s); no model is active", self.state_path, exc
            )
            return ModelState()
        try:
            return ModelState.model_validate_json(data)
        except ValidationError as exc:
            logger.warning(
                "model state %s is corrupt (%s); no model is active",
                self.state_path,
                str(exc).splitlines()[0][:200],
            )
            return ModelState()

    def write_state(self, state: ModelState) -> ModelState:
        """Replace `state.json` atomically; return what was written (stamped now)."""
        stamped = state.model_copy(update={"updated_at": datetime.now(UTC)})
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.state_path, stamped.model_dump_json(indent=2).encode())
        return stamped

    # --- versions ------------------------------------------------------------------------

    def directory(self, name: str, version: str) -> Path:
        """The folder of a version (refusing names that are not plain folder names)."""
        check_names(name, version)
        return self.versions / name / version

    def read(self, name: str, version: str) -> InstalledModel:
        """The installed version `name` `version`; `ModelRejected` if absent or unreadable."""
        directory = self.directory(name, version)
        where = {"name": name, "version": version}
        try:
            raw = loads_object((directory / MANIFEST_FILE).read_bytes())
            manifest = validate(raw, ModelManifest)
        except FileNotFoundError:
            raise ModelRejected(
                Refusal.NOT_INSTALLED, f"{name} {version} is not installed in {directory}", **where
            ) from None
        except OSError as exc:
            raise ModelRejected(
                Refusal.STORAGE_FAILED, f"cannot read {directory / MANIFEST_FILE}: {exc}", **where
            ) from exc
        except DecodeError as exc:
            raise ModelRejected(
                Refusal.MALFORMED, f"{directory / MANIFEST_FILE}: {exc}", **where
            ) from exc
        if (manifest.name, manifest.version) != (name, version):
            raise ModelRejected(
                Refusal.MALFORMED,
                f"{directory / MANIFEST_FILE} describes {manifest.name} {manifest.version}",
                **where,
            )
        return InstalledModel(manifest, raw, directory)

    def scan(self) -> tuple[list[InstalledModel], list[str]]:
        """Every installed version, and a line for each folder that is not a usable one."""
        found: list[InstalledModel] = []
        problems: list[str] = []
        for name_dir in _subfolders(self.versions):
            for version_dir in _subfolders(name_dir):
                try:
                    found.append(self.read(name_dir.name, version_dir.name))
                except ModelRejected as exc:
                    problems.append(exc.detail)
        return found, problems

    def place(self, raw: dict[str, Any], manifest: ModelManifest, part: Path) -> InstalledModel:
        """Move a verified download into `versions/` with its manifest, in one rename."""
        final = self.directory(manifest.name, manifest.version)
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = final.parent / f".{manifest.version}.{secrets.token_hex(4)}.tmp"
        staging.mkdir(mode=0o700)
        try:
            part.replace(staging / MODEL_FILE)
            write_atomic(staging / MANIFEST_FILE, dumps(raw), mode=0o644)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return InstalledModel(manifest, raw, final)

    def rewrite_manifest(self, installed: InstalledModel, raw: dict[str, Any]) -> InstalledModel:
        """Replace a version's manifest with a newer one describing the same bytes."""
        manifest = validate(raw, ModelManifest)
        write_atomic(installed.directory / MANIFEST_FILE, dumps(raw), mode=0o644)
        return InstalledModel(manifest, raw, installed.directory)

    def remove(self, name: str, version: str) -> None:
        """Delete a version's folder (and its name's folder once empty)."""
        directory = self.directory(name, version)
        shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            directory.parent.rmdir()
        logger.info("model %s %s removed from %s", name, version, directory)

    def prune(self, state: ModelState, keep_others: int) -> list[ModelRef]:
        """Delete all but the active, the previous and the `keep_others` newest other versions."""
        protected = {(r.name, r.version) for r in (state.active, state.previous) if r is not None}
        installed, _ = self.scan()
        others = [m for m in installed if (m.manifest.name, m.manifest.version) not in protected]
        others.sort(key=lambda m: m.directory.stat().st_mtime, reverse=True)
        removed = others[keep_others:]
        for model in removed:
            self.remove(model.manifest.name, model.manifest.version)
        return [m.ref for m in removed]

    def new_part(self) -> Path:
        """A fresh path under `incoming/` for a download (named after this process)."""
        self.incoming.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.incoming / f"{os.getpid()}-{secrets.token_hex(6)}.part"

    def clean(self) -> None:
        """Delete downloads and staging folders left by processes that are gone."""
        for part in _entries(self.incoming):
            pid = part.name.split("-", 1)[0]
            if not (pid.isdigit() and _alive(int(pid))):
                part.unlink(missing_ok=True)
        for name_dir in _subfolders(self.versions):
            for leftover in name_dir.glob(".*.tmp"):
                if time.time() - leftover.stat().st_mtime > 3600:
                    shutil.rmtree(leftover, ignore_errors=True)


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except FileNotFoundError:
        return []


def _subfolders(folder: Path) -> list[Path]:
    return [p for p in _entries(folder) if SAFE_NAME.match(p.name) and p.is_dir()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- requests from `edge-agent model` to the running agent -----------------------------------


class ModelRequest(BaseModel):
    """What `edge-agent model activate|rollback` asks of the running agent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: secrets.token_hex(8), pattern=r"^[0-9a-f]{16}$")
    action: Literal["activate", "rollback"]
    name: str | None = None
    version: str | None = None


class ModelResult(BaseModel):
    """The running agent's answer to a `ModelRequest`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    ok: bool
    active: ModelRef | None = None
    previous: ModelRef | None = None
    refusal: Refusal | None = None
    detail: str = ""
    latency_ms: float | None = None


def submit_request(store: ModelStore, request: ModelRequest) -> Path:
    """Leave a request for the running agent; return the path its answer will appear at."""
    store.requests.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(store.requests / f"request-{request.id}.json", request.model_dump_json().encode())
    return store.requests / f"result-{request.id}.json"


def take_requests(store: ModelStore) -> list[ModelRequest]:
    """The waiting requests, oldest first, removed from disk (malformed ones are dropped)."""
    paths = (
        sorted(store.requests.glob("request-*.json"), key=_mtime) if store.requests.is_dir() else []
    )
    requests: list[ModelRequest] = []
    for path in paths:
        try:
            requests.append(ModelRequest.model_validate_json(path.read_bytes()))
        except (OSError, ValidationError) as exc:
            logger.warning("dropping unreadable model request %s: %s", path, str(exc)[:200])
        path.unlink(missing_ok=True)
    return requests


def answer_request(store: ModelStore, result: ModelResult) -> None:
    """Write the agent's answer where `submit_request` said it would appear."""
    store.requests.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(store.requests / f"result-{result.id}.json", result.model_dump_json().encode())


def read_result(path: Path) -> ModelResult | None:
    """The answer at `path` once it is there (and then removes it), else None."""
    try:
        result = ModelResult.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        raise AgentError(f"unreadable answer from the agent in {path}: {exc}") from exc
    path.unlink(missing_ok=True)
    return result


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
