"""The in-memory bus places keys exactly where Kafka's default partitioner does."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from hub.bus.partitioner import murmur2, partition_for

# Expected values from the Java client's UtilsTest.testMurmur2 (signed there, unsigned here).
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "signed"), JAVA_VECTORS.items())
def test_murmur2_matches_the_java_client(key: bytes, signed: int) -> None:
    assert murmur2(key) == signed & 0xFFFFFFFF


@given(key=st.binary(max_size=80), partitions=st.integers(min_value=1, max_value=64))
def test_partition_matches_aiokafka(key: bytes, partitions: int) -> None:
    expected = DefaultPartitioner()(key, list(range(partitions)), [])
    assert partition_for(key, partitions) == expected


def test_device_ids_spread_over_partitions() -> None:
    used = {partition_for(f"amr-{n}".encode(), 6) for n in range(50)}
    assert used == set(range(6))


def test_zero_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        partition_for(b"amr-1", 0)
