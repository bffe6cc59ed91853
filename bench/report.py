"""The one JSON shape every benchmark prints (DESIGN.md "Performance")."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Measure:
    """One side of a ratio: a value with its unit and what was measured."""

    value: float
    unit: str
    what: str


@dataclass(frozen=True)
class BenchResult:
    """`{"name", "ratio", "target", "numerator", "denominator", "env"}` plus details.

    `target` reads as `">= 0.85"` or `"<= 3"`; `passed` says whether the ratio meets it.
    """

    name: str
    numerator: Measure
    denominator: Measure
    target: float
    direction: Literal[">=", "<="] = ">="
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Ours over the same-machine limit."""
        return self.numerator.value / self.denominator.value

    @property
    def passed(self) -> bool:
        """Whether the ratio meets the target."""
        if self.direction == ">=":
            return self.ratio >= self.target
        return self.ratio <= self.target

    def to_json(self) -> dict[str, Any]:
        """The printed object."""
        return {
            "name": self.name,
            "ratio": round(self.ratio, 4),
            "target": f"{self.direction} {self.target}",
            "passed": self.passed,
            "numerator": asdict(self.numerator),
            "denominator": asdict(self.denominator),
            "details": self.details,
            "env": environment(),
        }


def environment() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "machine": platform.machine(),
        "system": platform.system(),
        "cpus": os.cpu_count(),
    }


def rate(fn: Callable[[], int], *, min_seconds: float, rounds: int = 5) -> float:
    """Best-of-`rounds` items per second of `fn`, which returns how many items it did.

    Each round runs `fn` repeatedly for at least `min_seconds`; the best round is
    kept, so that a noisy neighbour lowers no figure.
    """
    best = 0.0
    for _ in range(rounds):
        done = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_seconds:
            done += fn()
        best = max(best, done / elapsed)
    return best
