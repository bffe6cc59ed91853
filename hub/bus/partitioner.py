"""Kafka's default key → partition mapping (murmur2), so both buses place keys alike.

Identical to the Java client's `Utils.murmur2` and aiokafka's `DefaultPartitioner`:
a key lands in the same partition number whichever bus holds it.

Example:
    >>> partition_for(b"amr-7", 6) == partition_for(b"amr-7", 6)
    True
    >>> murmur2(b"21")
    3321034988
"""

from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 of `data` as Kafka computes it, as an unsigned 32-bit integer (like aiokafka)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    tail_start = length - length % 4
    for i in range(0, tail_start, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = ((h * _M) & _MASK32) ^ k
    h = _mix_tail(h, data[tail_start:])
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h


def _mix_tail(h: int, tail: bytes) -> int:
    if not tail:
        return h
    for index in range(len(tail) - 1, -1, -1):
        h ^= tail[index] << (8 * index)
    return (h * _M) & _MASK32


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of `key` among `partitions`, as Kafka's default partitioner picks it."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
