"""Train, evaluate and export a YOLO detector with Ultralytics, offline, and write its card.

    >>> request = TrainRequest(data=Path("data.yaml"), epochs=50, imgsz=640)  # doctest: +SKIP
    >>> result = train(request)  # doctest: +SKIP
    >>> result.onnx, result.card.metrics.map50  # doctest: +SKIP
    (PosixPath('runs/train/shapes-20261127-184500/model.onnx'), 0.93)

Output folder: `model.onnx` (Ultralytics metadata plus `name`, `version`), `card.json`
(`training.card.ModelCard`), `best.pt`, and `ultralytics/` (the run's own files).
"""

from __future__ import annotations

import importlib.util
import logging
import platform
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import yaml

from training.baseline import BaselineCounter, BinLayout
from training.card import BaselineInfo, DatasetInfo, ModelCard, SplitCounts, TrainingInfo
from training.check import check_dataset
from training.dataset import Dataset, file_sha256, load_dataset
from training.errors import TrainingError
from training.evaluate import evaluate
from training.onnx_export import export_onnx
from training.ultralytics_env import MissingTrainExtra, import_ultralytics

logger = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Where the agent's detector stands by default: the baseline counts what it would report.
BASELINE_CONF, BASELINE_IOU = 0.25, 0.45
_PREDICT_CHUNK = 32
# Arguments outpost sets itself; `--arg` may not override them.
RESERVED = frozenset(
    {"data", "model", "epochs", "imgsz", "batch", "device", "project", "name", "exist_ok"}
    | {"mode", "task", "resume", "cfg", "source"}
)


class TrainRequestError(TrainingError):
    """A training request that cannot run: bad model, device, name or argument."""


class Progress(Protocol):
    """What the trainer reports while it runs (the CLI draws it with rich)."""

    def stage(self, text: str) -> None:
        """A new stage begins: training, evaluation, export, baseline."""

    def batch(self, epoch: int, epochs: int, batch: int, batches: int, loss: float) -> None:
        """One training batch is done (epoch and batch count from 1)."""

    def epoch(self, epoch: int, epochs: int, metrics: Mapping[str, float]) -> None:
        """One epoch is done, with its validation metrics when it was validated."""


class Silent:
    """Progress that only logs stages and epochs."""

    def stage(self, text: str) -> None:
        logger.info("%s", text)

    def batch(self, epoch: int, epochs: int, batch: int, batches: int, loss: float) -> None:
        pass

    def epoch(self, epoch: int, epochs: int, metrics: Mapping[str, float]) -> None:
        logger.info("epoch %d/%d done", epoch, epochs)


@dataclass(frozen=True)
class TrainRequest:
    """What `outpost train` was asked to do."""

    data: Path
    model: str = "yolov8n.yaml"
    epochs: int = 100
    imgsz: int = 640
    batch: int = 16
    device: str = "auto"  # auto | cpu | cuda
    name: str | None = None
    version: str | None = None
    out: Path | None = None
    args: tuple[str, ...] = ()  # `KEY=VALUE` Ultralytics training arguments


@dataclass(frozen=True)
class TrainResult:
    """Where the outputs are, and the card."""

    out: Path
    onnx: Path
    card_path: Path
    best_pt: Path
    card: ModelCard


@dataclass(frozen=True)
class _Plan:
    """A checked request: everything resolved before any training starts."""

    dataset: Dataset
    name: str
    version: str
    out: Path
    device: str
    device_name: str
    model: str
    args: dict[str, Any]
    ultralytics: ModuleType


def train(request: TrainRequest, progress: Progress | None = None) -> TrainResult:
    """Train, evaluate on val, export ONNX, measure the baseline and write the card."""
    report = progress or Silent()
    plan = _prepare(request)
    work = plan.out / "ultralytics"
    described, problems = dataset_info(plan.dataset)
    if problems:
        where = plan.dataset.yaml_path
        report.stage(f"warning: {problems} label problems; see outpost dataset check {where}")
    report.stage(f"training {plan.model} on {plan.device} ({plan.device_name})")
    model = plan.ultralytics.YOLO(plan.model, task="detect")
    _attach(model, report)
    started = time.perf_counter()
    model.train(**plan.args, project=str(work), name="train", exist_ok=True)
    duration = time.perf_counter() - started
    best = _best_weights(model.trainer, plan.out)
    report.stage("evaluating on the val split")
    trained = plan.ultralytics.YOLO(str(best), task="detect")
    metrics = evaluate(trained, plan.dataset.names, plan.args, work)
    report.stage("exporting ONNX")
    onnx = export_onnx(
        trained, plan.out / "model.onnx", imgsz=request.imgsz, name=plan.name, version=plan.version
    )
    report.stage("measuring the drift baseline on the val split")
    baseline, baseline_info = measure_baseline(trained, plan.dataset, plan.args)
    card = ModelCard(
        name=plan.name,
        version=plan.version,
        classes=list(plan.dataset.names),
        input_size=onnx.input_size,
        metrics=metrics,
        dataset=described,
        training=_training_info(request, plan, duration, model.trainer),
        onnx=onnx.info,
        baseline=baseline,
        baseline_info=baseline_info,
        created_at=datetime.now(UTC),
    )
    card_path = plan.out / "card.json"
    card_path.write_text(card.to_json(), encoding="utf-8")
    return TrainResult(plan.out, onnx.path, card_path, best, card)


def _prepare(request: TrainRequest) -> _Plan:
    """Check the request and resolve it; a refused request leaves no output folder behind."""
    dataset = load_dataset(request.data)
    name = _checked_name("--name", request.name or _default_name(dataset))
    version = _checked_name("--version", request.version or _timestamp())
    out = (request.out or Path("runs/train") / f"{name}-{version}").resolve()
    if (out / "model.onnx").exists():
        raise TrainRequestError(f"{out} already holds a model; give another --out or --version")
    device, device_name = resolve_device(request.device)
    model = resolve_model(request.model, _ultralytics_root())
    created = not out.exists()
    try:
        ultralytics = import_ultralytics(out / "ultralytics" / "settings")
        overrides = parse_overrides(request.args, ultralytics.utils.DEFAULT_CFG_DICT)
        args = train_args(request, device, write_lists(dataset, out / "ultralytics"), overrides)
    except TrainRequestError:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return _Plan(dataset, name, version, out, device, device_name, model, args, ultralytics)


def _ultralytics_root() -> Path:
    """The installed ultralytics package's folder, found without importing it."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or spec.origin is None:
        raise MissingTrainExtra("ultralytics is not installed; install the train extra")
    return Path(spec.origin).parent


def resolve_device(choice: str) -> tuple[str, str]:
    """`auto`, `cpu` or `cuda` as `("cpu" | "cuda:0", human-readable device name)`."""
    import torch

    if choice not in {"auto", "cpu", "cuda"}:
        raise TrainRequestError(f"--device must be auto, cpu or cuda, not {choice!r}")
    cuda = torch.cuda.is_available()
    if choice == "cuda" and not cuda:
        raise TrainRequestError("--device cuda: no CUDA device is available to torch here")
    if choice == "cuda" or (choice == "auto" and cuda):
        return "cuda:0", str(torch.cuda.get_device_name(0))
    return "cpu", cpu_name()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def resolve_model(spec: str, ultralytics_root: Path) -> str:
    """The model to start from: a local `.pt`/`.yaml`, or a model yaml Ultralytics ships.

    Nothing is ever downloaded: `yolov8n.pt` must be a file here, while `yolov8n.yaml`
    (architecture only, trained from scratch) comes with the ultralytics package.
    """
    path = Path(spec).expanduser()
    suffix = path.suffix.lower()
    if suffix not in {".pt", ".yaml", ".yml"}:
        raise TrainRequestError(
            f"--model {spec!r}: give a model yaml (yolov8n.yaml, yolo11n.yaml) or a local .pt"
        )
    if path.is_file():
        return str(path.resolve())
    if suffix == ".pt":
        raise TrainRequestError(
            f"--model {spec!r}: no such file (downloads are off: give the path of a local .pt)"
        )
    # yolov8n.yaml is yolov8.yaml at scale n, as Ultralytics' own lookup reads it.
    unscaled = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", path.name)
    packaged = ultralytics_root / "cfg" / "models"
    for candidate in (path.name, unscaled):
        if any(packaged.rglob(candidate)):
            return path.name
    shipped = sorted(p.name for p in packaged.glob("*/*.yaml"))[:12]
    raise TrainRequestError(
        f"--model {spec!r}: not a local file nor a model yaml shipped with ultralytics"
        f" (e.g. yolov8n.yaml, yolo11n.yaml; packaged: {', '.join(shipped)}, ...)"
    )


def train_args(
    request: TrainRequest, device: str, data_yaml: Path, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The Ultralytics `train()` arguments: outpost's defaults, then the `--arg` overrides."""
    cuda = device.startswith("cuda")
    args: dict[str, Any] = {
        "data": str(data_yaml),
        "epochs": request.epochs,
        "imgsz": request.imgsz,
        "batch": request.batch,
        "device": "0" if cuda else "cpu",
        "workers": 8 if cuda else 0,  # on CPU, loader processes only compete with training
        "amp": False,  # Ultralytics' AMP check downloads weights
        "plots": False,  # plots download a font
        "seed": 0,
        "deterministic": True,
        "verbose": False,
    }
    bad = sorted(set(overrides) & RESERVED)
    if bad:
        raise TrainRequestError(f"--arg {bad[0]}: set by outpost itself (use its own option)")
    args.update(overrides)
    return args


def parse_overrides(pairs: Iterable[str], known: Mapping[str, Any]) -> dict[str, Any]:
    """`KEY=VALUE` pairs (values read as YAML scalars) checked against Ultralytics' keys.

    >>> parse_overrides(["lr0=0.002", "mosaic=0", "optimizer=AdamW", "val=false"], {
    ...     "lr0": 0.01, "mosaic": 1.0, "optimizer": "auto", "val": True})
    {'lr0': 0.002, 'mosaic': 0, 'optimizer': 'AdamW', 'val': False}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TrainRequestError(f"--arg {pair!r}: expected KEY=VALUE, e.g. lr0=0.002")
        if key not in known:
            raise TrainRequestError(f"--arg {key}: not an Ultralytics training argument")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise TrainRequestError(f"--arg {pair!r}: cannot read the value: {exc}") from exc
    return out


def measure_baseline(
    model: Any, dataset: Dataset, args: Mapping[str, Any]
) -> tuple[dict[str, list[float]], BaselineInfo]:
    """The drift histograms of the model's predictions on the val images."""
    layout = BinLayout(classes=dataset.names)
    counter = BaselineCounter(layout)
    images = dataset.splits["val"].images
    for result in _predict(model, list(images), args):
        boxes = result.boxes
        counter.add([int(c) for c in boxes.cls.tolist()], boxes.conf.tolist(), result.orig_img)
    info = BaselineInfo(
        images=len(images),
        conf=BASELINE_CONF,
        iou=BASELINE_IOU,
        conf_bins=layout.conf_bins,
        image_bins=layout.image_bins,
        max_boxes=layout.max_boxes,
        image_width=layout.image_width,
    )
    return counter.histograms(), info


def _predict(model: Any, images: list[Path], args: Mapping[str, Any]) -> Iterator[Any]:
    for start in range(0, len(images), _PREDICT_CHUNK):
        chunk = [str(p) for p in images[start : start + _PREDICT_CHUNK]]
        yield from model.predict(
            chunk,
            imgsz=args["imgsz"],
            conf=BASELINE_CONF,
            iou=BASELINE_IOU,
            device=args["device"],
            verbose=False,
            stream=True,
        )


def _attach(model: Any, report: Progress) -> None:
    """Feed `report` from Ultralytics' trainer callbacks."""
    state = {"batch": 0}

    def epoch_start(trainer: Any) -> None:
        state["batch"] = 0

    def batch_end(trainer: Any) -> None:
        state["batch"] += 1
        loss = _total_loss(trainer.tloss)
        batches = len(trainer.train_loader)
        report.batch(trainer.epoch + 1, trainer.epochs, state["batch"], batches, loss)

    def fit_epoch_end(trainer: Any) -> None:
        metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
        report.epoch(trainer.epoch + 1, trainer.epochs, metrics)

    callbacks: dict[str, Callable[[Any], None]] = {
        "on_train_epoch_start": epoch_start,
        "on_train_batch_end": batch_end,
        "on_fit_epoch_end": fit_epoch_end,
    }
    for event, callback in callbacks.items():
        model.add_callback(event, callback)


def _total_loss(tloss: Any) -> float:
    """The running mean loss: a dict of parts in ultralytics 8.4, a tensor before."""
    if tloss is None:
        return float("nan")
    parts = tloss.values() if isinstance(tloss, dict) else [tloss.sum()]
    return float(sum(float(part) for part in parts))


def _best_weights(trainer: Any, out: Path) -> Path:
    for candidate in (Path(trainer.best), Path(trainer.last)):
        if candidate.is_file():
            target = out / "best.pt"
            shutil.copyfile(candidate, target)
            return target
    raise TrainingError(f"training wrote no weights in {Path(trainer.best).parent}")


def write_lists(dataset: Dataset, work: Path) -> Path:
    """A data.yaml for Ultralytics with each split as a list of absolute image paths.

    Ultralytics then trains on exactly the images outpost checked and hashed, and a
    `download:` key in the user's data.yaml can never fetch anything.
    """
    work.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"path": str(dataset.root)}
    for name, split in dataset.splits.items():
        listing = work / f"{name}.txt"
        listing.write_text("".join(f"{p}\n" for p in split.images), encoding="utf-8")
        document[name] = str(listing)
    document["names"] = dict(enumerate(dataset.names))
    data_yaml = work / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return data_yaml


def dataset_info(dataset: Dataset) -> tuple[DatasetInfo, int]:
    """The card's dataset entry, and how many label problems the dataset has."""
    report = check_dataset(dataset, decode_images=False)
    splits = {k: SplitCounts(**v.model_dump()) for k, v in report.splits.items()}
    info = DatasetInfo(path=str(dataset.yaml_path), sha256=dataset.sha256(), splits=splits)
    return info, len(report.problems)


def _training_info(
    request: TrainRequest, plan: _Plan, duration: float, trainer: Any
) -> TrainingInfo:
    import torch
    import ultralytics

    return TrainingInfo(
        model=request.model,
        model_sha256=file_sha256(Path(plan.model)) if Path(plan.model).is_absolute() else None,
        args=dict(plan.args),
        device=plan.device,
        device_name=plan.device_name,
        duration_s=round(duration, 3),
        epochs=int(trainer.epoch) + 1,
        ultralytics_version=ultralytics.__version__,
        torch_version=str(torch.__version__),
        python_version=platform.python_version(),
    )


def _default_name(dataset: Dataset) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset.root.name).strip("-._")
    return cleaned[:64] or "detector"


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def _checked_name(option: str, value: str) -> str:
    if not NAME.match(value):
        raise TrainRequestError(
            f"{option} {value!r}: 1 to 64 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    return value
