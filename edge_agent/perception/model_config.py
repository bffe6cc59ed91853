"""`[model]`: the model manager's settings, apart from the manager so that loading the
agent's settings does not import onnxruntime.

Example:
    >>> ModelSection().latency_budget_ms, ModelSection(keep_versions=3).keep_versions
    (250.0, 3)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from edge_agent.sections import PositiveSeconds, Section


class ModelSection(Section):
    """`[model]`: how new model versions are checked, downloaded and kept."""

    latency_budget_ms: Annotated[float, Field(gt=0, le=60_000)] = 250.0
    """A new model whose median detection latency (preprocess, inference, NMS) on a
    640x480 frame exceeds this is refused."""
    latency_runs: Annotated[int, Field(ge=1, le=1000)] = 5
    warm_up_runs: Annotated[int, Field(ge=1, le=100)] = 2
    keep_versions: Annotated[int, Field(ge=0, le=100)] = 1
    """Versions kept on disk besides the active and the previous one (newest first)."""
    download_timeout_s: PositiveSeconds = 30.0
    """Per network operation (connect, each read), not for the whole download."""
    download_retries: Annotated[int, Field(ge=0, le=20)] = 3
    request_poll_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    """How often the running agent looks for `edge-agent model` requests."""
