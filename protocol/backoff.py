"""Capped exponential backoff with full jitter, for the reconnect loops of agent and hub."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays `initial, 2·initial, …` up to `maximum`, each drawn uniformly in [d/2, d].

    Example:
        >>> b = Backoff(initial=1.0, maximum=4.0, rng=random.Random(0))
        >>> [round(b.next(), 2) for _ in range(4)]
        [0.92, 1.76, 2.84, 2.52]
    """

    initial: float
    maximum: float
    rng: random.Random = field(default_factory=random.Random)
    _attempt: int = 0

    def next(self) -> float:
        """The delay before the next attempt."""
        ceiling = min(self.maximum, self.initial * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 32)
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from `initial` (after a successful connection)."""
        self._attempt = 0
