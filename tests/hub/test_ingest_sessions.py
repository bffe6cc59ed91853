"""Which MQTT sessions ingest serves, per broker kind and `[ingest] routing`."""

from __future__ import annotations

from hub.ingest.service import session_specs
from hub.settings import HubSettings
from protocol import UPLINK_CHANNELS

EXTERNAL = {"kind": "external", "url": "mqtt://broker:1883"}


def test_sessions_routing_has_one_persistent_session_per_uplink_channel() -> None:
    settings = HubSettings(broker=EXTERNAL, ingest={"shared_group": "site-a"})
    specs = session_specs(settings, "ignored")
    assert {s.name for s in specs} == {c.value for c in UPLINK_CHANNELS}
    assert all(s.persistent for s in specs)
    assert {s.client_id for s in specs} == {f"site-a-{c.value}" for c in UPLINK_CHANNELS}
    for spec in specs:  # each session sees exactly its channel, of every device
        assert spec.subscription == f"outpost/v1/+/{spec.name}"
    # Stable order: the slot numbers shared over the bus mean the same session everywhere.
    assert specs == session_specs(settings, "another process")


def test_shared_routing_and_the_embedded_broker_have_one_session_of_their_own() -> None:
    shared = HubSettings(broker=EXTERNAL, ingest={"routing": "shared", "shared_group": "g"})
    [spec] = session_specs(shared, "outpost-ingest-1234")
    assert (spec.client_id, spec.subscription) == ("outpost-ingest-1234", "$share/g/outpost/v1/+/+")
    assert not spec.persistent
    [embedded] = session_specs(HubSettings(), "hub")
    assert (embedded.subscription, embedded.persistent) == ("outpost/v1/+/+", False)
