"""How an exported model does on data it never saw, and how long it takes on this CPU.

The val split a model was trained against also chose its best epoch, so its mAP flatters
the model a little. A held-out dataset (the simulator with another seed, or frames
captured in the field and labelled) gives the figure to quote. `outpost train --holdout
DATA.yaml` runs this on the exported file right after training; `outpost model evaluate
--model model.onnx --data DATA.yaml [--card card.json]` runs it on any detector file.

What is measured is the ONNX file agents run, not the PyTorch weights: Ultralytics'
validator (conf 0.001, IoU 0.7) over the dataset's val split, then bare `session.run`
on a warm `1 x 3 x H x W` input with 1 and with all of this machine's cores.

    >>> report = assess(Path("model.onnx"), Path("held-out/data.yaml"))  # doctest: +SKIP
    >>> report.held_out.metrics.map50, report.latency[0].p50_ms  # doctest: +SKIP
    (0.83, 11.2)
"""

from __future__ import annotations

import ast
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.card import CpuLatency, HeldOut, ModelCard
from training.dataset import Dataset, DatasetError, load_dataset
from training.errors import TrainingError
from training.evaluate import evaluate
from training.train import Progress, Silent, cpu_name, dataset_info, write_lists
from training.ultralytics_env import import_ultralytics

LATENCY_RUNS = 50
LATENCY_WARMUP = 5


@dataclass(frozen=True)
class Assessment:
    """The held-out metrics and the CPU latencies of one model file."""

    held_out: HeldOut
    latency: list[CpuLatency]


@dataclass(frozen=True)
class _ModelFile:
    path: Path
    classes: tuple[str, ...]
    input_size: tuple[int, int]  # (height, width)


def assess(
    model: Path, data: Path, *, work: Path | None = None, progress: Progress | None = None
) -> Assessment:
    """Evaluate the ONNX detector `model` on the val split of `data`, then time it on CPU.

    Raises `TrainingError` (or `DatasetError`) naming the problem: a file that is not an
    Ultralytics ONNX detector, a dataset without a val split, or classes that differ.
    """
    report = progress or Silent()
    described = _describe(model)
    dataset = load_dataset(data)
    _check_matches(described, dataset)
    info, problems = dataset_info(dataset)
    if problems:
        report.stage(f"warning: {problems} label problems; see outpost dataset check {data}")
    report.stage(f"evaluating {model.name} on {dataset.yaml_path} (val split)")
    with tempfile.TemporaryDirectory(prefix="outpost-holdout-") as tmp:
        folder = work or Path(tmp)
        ultralytics = import_ultralytics(folder / "settings")
        args = {
            "data": str(write_lists(dataset, folder)),
            "imgsz": max(described.input_size),
            "batch": 1,  # the exported file has a fixed batch of one
            "device": "cpu",
        }
        detector = ultralytics.YOLO(str(described.path), task="detect")
        metrics = evaluate(detector, dataset.names, args, folder)
    report.stage("timing session.run on this CPU")
    latency = cpu_latency(described)
    return Assessment(HeldOut(dataset=info, metrics=metrics), latency)


def check_holdout(holdout: Path, trained_on: Path) -> None:
    """`DatasetError`/`TrainingError` unless `holdout` is a dataset with a val split that is
    not the training dataset itself."""
    dataset = load_dataset(holdout)
    if "val" not in dataset.splits:
        raise DatasetError(f"{dataset.yaml_path}: has no val split to evaluate on")
    if dataset.yaml_path.resolve() == load_dataset(trained_on).yaml_path.resolve():
        raise DatasetError(f"--holdout {holdout}: is the training dataset; give another one")


def cpu_latency(model: _ModelFile, runs: int = LATENCY_RUNS) -> list[CpuLatency]:
    """p50/p95 of a warm `session.run` with one intra-op thread and with every core."""
    import onnxruntime as ort

    cores = os.cpu_count() or 1
    found = []
    for threads in sorted({1, cores}):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        tensor = np.random.default_rng(0).random((1, 3, *model.input_size), dtype=np.float32)
        for _ in range(LATENCY_WARMUP):
            session.run(None, {name: tensor})
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            session.run(None, {name: tensor})
            times.append((time.perf_counter() - start) * 1000)
        cuts = statistics.quantiles(times, n=20)
        found.append(
            CpuLatency(
                cpu=cpu_name(),
                threads=threads,
                runs=runs,
                p50_ms=round(statistics.median(times), 3),
                p95_ms=round(cuts[18], 3),
            )
        )
    return found


def add_to_card(card_path: Path, assessment: Assessment) -> ModelCard:
    """Rewrite `card_path` with the assessment's `held_out` and `cpu_latency`."""
    try:
        card = ModelCard.model_validate_json(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingError(f"{card_path}: not a readable model card: {exc}") from exc
    updated = card.model_copy(
        update={"held_out": assessment.held_out, "cpu_latency": assessment.latency}
    )
    card_path.write_text(updated.to_json(), encoding="utf-8")
    return updated


def _describe(path: Path) -> _ModelFile:
    """Classes and input size from an Ultralytics ONNX export's metadata."""
    import onnxruntime as ort

    if not path.is_file():
        raise TrainingError(f"{path}: no such model file")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, undocumented exception types
        raise TrainingError(f"{path}: onnxruntime cannot load it: {exc}") from exc
    meta: dict[str, Any] = dict(session.get_modelmeta().custom_metadata_map)
    shape = session.get_inputs()[0].shape
    try:
        names = ast.literal_eval(meta["names"])
        classes = tuple(str(names[i]) for i in sorted(names))
        height, width = int(shape[2]), int(shape[3])
    except (KeyError, ValueError, SyntaxError, TypeError, IndexError) as exc:
        raise TrainingError(
            f"{path}: not an Ultralytics ONNX detector (needs 'names' metadata and a fixed "
            f"1x3xHxW input; input is {shape}): {exc}"
        ) from exc
    return _ModelFile(path.resolve(), classes, (height, width))


def _check_matches(model: _ModelFile, dataset: Dataset) -> None:
    if "val" not in dataset.splits:
        raise TrainingError(f"{dataset.yaml_path}: has no val split to evaluate on")
    if tuple(dataset.names) != model.classes:
        raise TrainingError(
            f"{dataset.yaml_path}: classes {list(dataset.names)} differ from the model's "
            f"{list(model.classes)}"
        )
