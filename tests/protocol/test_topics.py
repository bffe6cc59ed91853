"""Topic grammar: builders and a parser that refuses everything outside it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    SHARED_INGEST_FILTER,
    Channel,
    Topic,
    TopicError,
    device_filter,
    parse_topic,
    topic,
)
from tests.protocol.strategies import device_ids


@given(device_ids, st.sampled_from(Channel))
def test_built_topics_parse_back(device: str, channel: Channel) -> None:
    assert parse_topic(topic(device, channel)) == Topic(device, channel)


@given(st.text(max_size=80))
def test_parser_raises_only_topic_error(value: str) -> None:
    try:
        parsed = parse_topic(value)
    except TopicError:
        return
    assert topic(parsed.device, parsed.channel) == value


@pytest.mark.parametrize(
    "value",
    [
        "outpost/v1/+/telemetry",
        "outpost/v1/#",
        "outpost/v1/amr-7/#",
        "outpost/v1/../telemetry",
        "outpost/v1/amr..7/telemetry",
        "outpost/v1//telemetry",
        "outpost/v1/amr-7/",
        "outpost/v1/amr-7/telemetry/extra",
        "outpost/v2/amr-7/telemetry",
        "other/v1/amr-7/telemetry",
        "outpost/v1/AMR-7/telemetry",
        "outpost/v1/-amr/telemetry",
        "outpost/v1/" + "a" * 64 + "/telemetry",
        "outpost/v1/amr-7/nonsense",
        "outpost/v1/amr\x007/telemetry",
        "/outpost/v1/amr-7/telemetry",
        "",
    ],
)
def test_parser_refuses_topics_outside_the_grammar(value: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(value)


@pytest.mark.parametrize("value", [None, 7, b"outpost/v1/amr-7/state"])
def test_parser_refuses_non_strings(value: object) -> None:
    with pytest.raises(TopicError, match="string"):
        parse_topic(value)


@pytest.mark.parametrize("device", ["", "A", "-x", "a" * 64, "a/b", "a+b", "a#", "amr_7"])
def test_builders_refuse_bad_device_ids(device: str) -> None:
    with pytest.raises(TopicError, match="device id"):
        topic(device, Channel.STATE)


def test_filters() -> None:
    assert device_filter("amr-7") == "outpost/v1/amr-7/+"
    assert SHARED_INGEST_FILTER == "$share/outpost-ingest/outpost/v1/+/+"
