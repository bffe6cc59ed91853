"""Login rate limit: at most N failed logins per (username, client address) per window.

In-process: each API process counts its own failures, so with K API processes
behind a load balancer an attacker gets up to K times N tries per window. Enough to make
password guessing slow; a shared limit (PostgreSQL or Redis) is future work.

Example:
    >>> now = [0.0]
    >>> limit = LoginLimiter(max_failures=2, window_s=60, clock=lambda: now[0])
    >>> limit.failed(("ana", "10.0.0.1")); limit.failed(("ana", "10.0.0.1"))
    >>> limit.retry_after(("ana", "10.0.0.1")), limit.retry_after(("ana", "10.0.0.2"))
    (60, None)
    >>> now[0] = 61.0
    >>> limit.retry_after(("ana", "10.0.0.1")) is None
    True
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

Key = tuple[str, str]


class LoginLimiter:
    """Sliding-window counter of failed logins, bounded in memory (`max_keys`)."""

    def __init__(
        self,
        *,
        max_failures: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.max_failures, self.window_s, self.max_keys = max_failures, window_s, max_keys
        self._clock = clock
        self._failures: dict[Key, deque[float]] = {}

    def retry_after(self, key: Key) -> int | None:
        """Whole seconds until `key` may try again, or None when it may try now."""
        recent = self._recent(key)
        if recent is None or len(recent) < self.max_failures:
            return None
        return max(1, math.ceil(recent[0] + self.window_s - self._clock()))

    def failed(self, key: Key) -> None:
        """Count one failed login."""
        recent = self._recent(key)
        if recent is None:
            self._make_room()
            recent = self._failures[key] = deque(maxlen=self.max_failures)
        recent.append(self._clock())

    def succeeded(self, key: Key) -> None:
        """Forget the failures of `key`."""
        self._failures.pop(key, None)

    def _recent(self, key: Key) -> deque[float] | None:
        recent = self._failures.get(key)
        if recent is None:
            return None
        horizon = self._clock() - self.window_s
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            del self._failures[key]
            return None
        return recent

    def _make_room(self) -> None:
        if len(self._failures) < self.max_keys:
            return
        horizon = self._clock() - self.window_s
        for key in [k for k, v in self._failures.items() if not v or v[-1] <= horizon]:
            del self._failures[key]
        while len(self._failures) >= self.max_keys:  # still full: forget the oldest keys
            del self._failures[next(iter(self._failures))]
