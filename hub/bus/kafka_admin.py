"""Kafka topic administration: create the hub's topics, inspect them, delete a prefix's.

Every call opens its own admin client, bounded by `timeout_s`, and closes it.

Example:
    >>> import asyncio
    >>> names = ["t1.system.events"]
    >>> asyncio.run(ensure_topics("127.0.0.1:19092", names, partitions=6))  # doctest: +SKIP
    ['t1.system.events']
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from hub.bus._kafka_guard import guarded
from hub.bus.base import BusError, BusRejected

logger = logging.getLogger(__name__)

LISTING_POLL_S = 0.05


@asynccontextmanager
async def admin_client(bootstrap: str, timeout_s: float) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit; each step bounded by `timeout_s`."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="outpost-hub-admin",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        async with guarded(bootstrap, "connecting the admin client", timeout_s):
            await admin.start()
        yield admin
    finally:
        try:
            async with guarded(bootstrap, "closing the admin client", timeout_s):
                await admin.close()
        except BusError as exc:  # the outcome is already decided; closing is best effort
            logger.warning("bus: %s", exc)


async def ensure_topics(
    bootstrap: str,
    topics: Sequence[str],
    *,
    partitions: int,
    replication_factor: int = 1,
    timeout_s: float = 10.0,
) -> list[str]:
    """Create those of `topics` that are missing and wait until the broker lists them.

    Returns the names this call created. A topic that already exists is left as it
    is, even with another partition count: changing it would move keys to other
    partitions (logged as a warning).
    """
    async with admin_client(bootstrap, timeout_s) as admin:
        async with guarded(bootstrap, "listing topics", timeout_s):
            existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        created = await _create(
            admin, bootstrap, missing, partitions, replication_factor, timeout_s
        )
        async with guarded(bootstrap, "waiting for new topics to be listed", timeout_s):
            await _until_listed(admin, missing)
        present = [t for t in topics if t in existing]
        await _warn_partition_mismatch(admin, bootstrap, present, partitions, timeout_s)
    if created:
        logger.info("bus: created %d Kafka topics at %s", len(created), bootstrap)
    return created


async def _create(
    admin: AIOKafkaAdminClient,
    bootstrap: str,
    names: Sequence[str],
    partitions: int,
    replication_factor: int,
    timeout_s: float,
) -> list[str]:
    """Create `names`; return those this request created ("already exists" is a lost race)."""
    if not names:
        return []
    new = [NewTopic(t, partitions, replication_factor) for t in names]
    async with guarded(bootstrap, f"creating {len(new)} topics", timeout_s):
        response = await admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
    topic_errors: list[dict[str, Any]] = response.to_object()["topic_errors"]
    _raise_for_errors(bootstrap, topic_errors)
    return [str(e["topic"]) for e in topic_errors if not e["error_code"]]


async def _until_listed(admin: AIOKafkaAdminClient, names: Sequence[str]) -> None:
    """Poll the broker's topic list until it shows `names`.

    The controller answers CreateTopics before the broker's metadata shows the
    topics; a client that asks at once would see them missing.
    """
    wanted = set(names)
    while wanted:
        wanted -= set(await admin.list_topics())
        if wanted:
            await asyncio.sleep(LISTING_POLL_S)


def _raise_for_errors(bootstrap: str, topic_errors: list[dict[str, Any]]) -> None:
    """Raise for the first topic Kafka refused; "already exists" (a race) is fine."""
    for entry in topic_errors:
        code = int(entry["error_code"])
        if code and for_code(code) is not TopicAlreadyExistsError:
            error = for_code(code)
            kind = BusError if error.retriable else BusRejected
            raise kind(
                f"Kafka at {bootstrap}: cannot create topic {entry['topic']}: "
                f"{error.__name__} ({entry.get('error_message') or code})"
            )


async def _warn_partition_mismatch(
    admin: AIOKafkaAdminClient,
    bootstrap: str,
    topics: Sequence[str],
    partitions: int,
    timeout_s: float,
) -> None:
    if not topics:
        return
    async with guarded(bootstrap, "describing topics", timeout_s):
        counts = await _partition_counts(admin, topics)
    for name, count in counts.items():
        if count != partitions:
            logger.warning(
                "bus: topic %s has %d partitions, configured %d: left as it is",
                name,
                count,
                partitions,
            )


async def _partition_counts(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> dict[str, int]:
    # Describe only topics that exist: asking for a missing one makes a broker with
    # auto.create.topics.enable create it, with the broker's default partition count.
    existing = set(await admin.list_topics())
    wanted = [t for t in topics if t in existing]
    if not wanted:
        return {}
    described: list[dict[str, Any]] = await admin.describe_topics(wanted)
    return {str(t["topic"]): len(t["partitions"]) for t in described if not t["error_code"]}


async def partition_counts(
    bootstrap: str, topics: Sequence[str], *, timeout_s: float = 10.0
) -> dict[str, int]:
    """The partition count of each of `topics` that exists (missing topics are left out)."""
    async with (
        admin_client(bootstrap, timeout_s) as admin,
        guarded(bootstrap, "describing topics", timeout_s),
    ):
        return await _partition_counts(admin, topics)


async def delete_prefixed_topics(
    bootstrap: str, prefix: str, *, timeout_s: float = 10.0
) -> list[str]:
    """Delete every topic whose name starts with `prefix` (a non-empty one); return them."""
    if not prefix:
        raise BusRejected("refusing to delete topics without a prefix: that would be all of them")
    async with admin_client(bootstrap, timeout_s) as admin:
        async with guarded(bootstrap, "listing topics", timeout_s):
            doomed = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if doomed:
            async with guarded(bootstrap, f"deleting {len(doomed)} topics", timeout_s):
                await admin.delete_topics(doomed, timeout_ms=int(timeout_s * 1000))
    return doomed
