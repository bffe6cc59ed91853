"""One deadline and one error translation for every network await made to Kafka.

aiokafka can wait forever when Kafka is down (`send_and_wait` is the known trap);
everything the hub awaits from it runs inside `guarded`, which turns timeouts and
aiokafka's errors into `BusError`s naming the bootstrap address.

aiokafka can also let a `CancelledError` out that nobody asked for: across a broker
restart, a consumer's `commit` or `getmany` may await one of its own futures that it
cancels internally. Left alone, that ends the caller's task as if the hub were
shutting down (a `TaskGroup` ignores a cancelled child), and a worker silently stops
consuming for good. A cancellation our own task did not receive becomes a `BusError`,
which the caller retries like any other outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.errors import (
    BrokerResponseError,
    ConsumerStoppedError,
    KafkaError,
    UnsupportedCodecError,
)

from hub.bus.base import BusClosed, BusError, BusRejected


@asynccontextmanager
async def guarded(bootstrap: str, what: str, timeout_s: float) -> AsyncIterator[None]:
    """Run the block within `timeout_s`; raise a `BusError` that says what failed, and where."""
    where = f"Kafka at {bootstrap}"
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError as exc:
        raise BusError(f"{where}: {what} timed out after {timeout_s:g} s") from exc
    except ConsumerStoppedError as exc:
        raise BusClosed(f"{where}: {what}: the consumer is stopped") from exc
    except KafkaError as exc:
        raise _translate(exc, f"{where}: {what} failed: {exc}") from exc
    except OSError as exc:
        raise BusError(f"{where}: {what} failed: {exc}") from exc
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # a real cancellation (shutdown): obey it
            raise
        raise BusError(
            f"{where}: {what} was interrupted inside aiokafka (stray cancellation)"
        ) from exc


def _translate(exc: KafkaError, message: str) -> BusError:
    """A final refusal from the broker is not worth retrying; anything else may pass."""
    final = isinstance(exc, UnsupportedCodecError) or (
        isinstance(exc, BrokerResponseError) and not exc.retriable
    )
    return BusRejected(message) if final else BusError(message)
