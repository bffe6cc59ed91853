"""The model card: what was trained, on what, how well, and the drift baseline.

`outpost train` writes it as `card.json` beside `model.onnx`; `outpost model push
--card card.json` sends it to the hub, which copies `baseline` into the signed
`protocol.ModelManifest` agents receive. `ModelCard.model_json_schema()` is its JSON Schema.

    >>> text = Path("runs/train/x/card.json").read_text()  # doctest: +SKIP
    >>> card = ModelCard.model_validate_json(text)  # doctest: +SKIP
    >>> card.metrics.map50, card.training.device  # doctest: +SKIP
    (0.91, 'cuda:0')
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from protocol.models import Name, Sha256

CARD_SCHEMA = "outpost.model-card/1"
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassMetrics(_Strict):
    """Validation AP of one class; None when the val split has no instance of it."""

    ap50: Fraction | None
    ap50_95: Fraction | None
    instances: Count


class Metrics(_Strict):
    """Box metrics on the val split (Ultralytics' validator: conf 0.001, IoU 0.7)."""

    split: Literal["val"] = "val"
    precision: Fraction
    recall: Fraction
    map50: Fraction
    map50_95: Fraction
    per_class_ap: dict[Name, ClassMetrics]


class SplitCounts(_Strict):
    """Images, images with a label file, and boxes of a split."""

    images: Count
    labelled: Count
    boxes: Count


class DatasetInfo(_Strict):
    """The data the model was trained and evaluated on."""

    path: str  # the data.yaml
    sha256: Sha256  # see training.dataset.dataset_sha256
    splits: dict[str, SplitCounts]


class TrainingInfo(_Strict):
    """How the model was trained: arguments, device, time and library versions."""

    model: str  # the model yaml or the .pt it was fine-tuned from
    model_sha256: Sha256 | None  # of that .pt or local yaml; None for a packaged yaml
    args: dict[str, Any]  # the Ultralytics training arguments outpost passed
    device: str  # "cpu" or "cuda:0"
    device_name: str
    duration_s: Annotated[float, Field(ge=0.0)]
    epochs: Count
    ultralytics_version: str
    torch_version: str
    python_version: str


class OnnxInfo(_Strict):
    """The exported file."""

    file: str
    sha256: Sha256
    size: Annotated[int, Field(gt=0)]
    opset: Annotated[int, Field(gt=0)]


class BaselineInfo(_Strict):
    """How `baseline` was measured: the model's predictions on the val images."""

    split: Literal["val"] = "val"
    images: Count
    conf: Fraction  # the agent's default detection threshold
    iou: Fraction
    conf_bins: int
    image_bins: int
    max_boxes: int
    image_width: int


class HeldOut(_Strict):
    """Metrics of the exported ONNX file on a dataset it never saw (neither trained nor
    selected on): the val split of another dataset, e.g. the simulator with another seed."""

    dataset: DatasetInfo
    metrics: Metrics


class CpuLatency(_Strict):
    """`session.run` time of the exported file on CPU: one `1 x 3 x H x W` image, warm."""

    cpu: str
    threads: Annotated[int, Field(ge=1)]  # onnxruntime intra-op threads
    runs: Annotated[int, Field(ge=1)]
    p50_ms: Annotated[float, Field(ge=0.0)]
    p95_ms: Annotated[float, Field(ge=0.0)]


class ModelCard(_Strict):
    """Everything known about a trained model, as `card.json`."""

    schema_: Literal["outpost.model-card/1"] = Field("outpost.model-card/1", alias="schema")
    name: Name
    version: Name
    task: Literal["detect"] = "detect"
    classes: Annotated[list[Name], Field(min_length=1)]
    input_size: tuple[int, int]  # (height, width), as protocol.ModelManifest
    metrics: Metrics
    dataset: DatasetInfo
    training: TrainingInfo
    onnx: OnnxInfo
    baseline: dict[Name, list[Annotated[float, Field(ge=0.0)]]]
    baseline_info: BaselineInfo
    created_at: AwareDatetime
    held_out: HeldOut | None = None
    """Set by `outpost train --holdout` or `outpost model evaluate --card`."""
    cpu_latency: list[CpuLatency] | None = None
    """Set with `held_out`: one entry per thread count measured."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_json(self) -> str:
        """The card as indented JSON, `schema` key included."""
        return self.model_dump_json(by_alias=True, indent=2) + "\n"
