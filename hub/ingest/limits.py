"""Per-device rate limits at ingest: a token bucket per key, in memory, per process.

A thin camera that floods the hub with frames must not slow anyone else down: its
frames above the rate are refused at once (counted, not dead-lettered: a flood of
dead letters would be a flood too), and the device's other messages pass untouched.

Example:
    >>> bucket = RateLimiter(rate_per_s=2.0, burst=2)
    >>> [bucket.allow("cam-1", now=0.0) for _ in range(3)]
    [True, True, False]
    >>> bucket.allow("cam-1", now=0.5), bucket.allow("cam-2", now=0.5)
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

IDLE_FORGET_S = 600.0
"""A key unseen this long is forgotten (its bucket would be full again anyway)."""


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`burst` messages at once, then `rate_per_s` a second, per key."""

    def __init__(self, *, rate_per_s: float, burst: int) -> None:
        """A limiter with every bucket full."""
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self.rate_per_s, self.burst = rate_per_s, burst
        self._buckets: dict[str, _Bucket] = {}
        self._pruned_at = 0.0

    def allow(self, key: str, *, now: float) -> bool:
        """Take a token from `key`'s bucket if it has one."""
        self._prune(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate_per_s)
        bucket.at = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def __len__(self) -> int:
        """Keys tracked now."""
        return len(self._buckets)

    def _prune(self, now: float) -> None:
        if now - self._pruned_at < IDLE_FORGET_S:
            return
        self._pruned_at = now
        idle = [k for k, b in self._buckets.items() if now - b.at > IDLE_FORGET_S]
        for key in idle:
            del self._buckets[key]
