"""Ultralytics imported offline: no downloads, no analytics, no pip installs, no files in `~`.

Ultralytics reads its environment once, when it is first imported, so everything that
uses it (the training pipeline and the tests) imports it through `import_ultralytics()`.

    >>> ultralytics = import_ultralytics()  # doctest: +SKIP
    >>> model = ultralytics.YOLO("yolov8n.yaml", task="detect")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from training.errors import TrainingError


class MissingTrainExtra(TrainingError):
    """Ultralytics (the `train` extra) is not installed."""


def import_ultralytics(config_dir: Path | None = None) -> ModuleType:
    """Import ultralytics offline, its settings in `config_dir` (or a new temporary folder).

    Only the first import reads the environment; later calls return the same module.
    """
    if "ultralytics" not in sys.modules:
        os.environ["YOLO_OFFLINE"] = "1"  # no DNS probe, so no downloads and no analytics
        os.environ["YOLO_AUTOINSTALL"] = "false"  # a missing requirement fails, never pip-installs
        os.environ["YOLO_VERBOSE"] = "false"
        if config_dir is None:
            config_dir = Path(tempfile.mkdtemp(prefix="outpost-ultralytics-"))
        config_dir.mkdir(parents=True, exist_ok=True)
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
        # ultralytics imports matplotlib, which would put its font cache in ~/.cache.
        os.environ.setdefault("MPLCONFIGDIR", str(config_dir / "matplotlib"))
    try:
        import ultralytics
        from ultralytics.utils import SETTINGS
    except ImportError as exc:
        raise MissingTrainExtra(
            f"ultralytics is not installed ({exc}); install the train extra: pip install '.[train]'"
        ) from exc
    SETTINGS["sync"] = False  # belt and braces: analytics are off even if online
    return ultralytics


@contextlib.contextmanager
def legacy_onnx_export() -> Iterator[None]:
    """Silence the warnings torch gives ultralytics' ONNX export, which are expected.

    Ultralytics exports through torch's TorchScript-based exporter (`dynamo=False`), which
    torch >= 2.9 deprecates with two warnings; tracing the detection head warns that its
    shape check becomes a constant (Ultralytics ignores `TracerWarning` when imported, but
    a caller such as pytest may have reset the warning filters since).
    """
    # Public as torch.jit.TracerWarning, but torch.jit's stubs do not re-export it.
    from torch.jit._trace import TracerWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=TracerWarning)
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore", "The feature will be removed. Please remove usage", DeprecationWarning
        )
        yield
