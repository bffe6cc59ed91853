"""The base of every settings section, apart from `edge_agent.config` so feature modules
can declare their own sections without importing the whole settings tree."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

PositiveSeconds = Annotated[float, Field(gt=0, le=86_400)]


class Section(BaseModel):
    """A settings section: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
