"""The hub's role loops: a loop that stops by itself is a crash, never a silent stop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hub.errors import HubError
from hub.runtime import _essential
from protocol.taskdump import dump_tasks


async def _stray_cancellation() -> None:
    """What aiokafka did across a broker restart: a future it cancelled itself, awaited."""
    inner: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    inner.cancel()
    await inner


async def _role_with_a_broken_writer() -> None:
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_essential("writer", _stray_cancellation()))
        tg.create_task(asyncio.sleep(30))  # cancelled by the failure, not left running


async def test_a_loop_ended_by_a_stray_cancellation_fails_the_task_group() -> None:
    with pytest.raises(ExceptionGroup) as caught:
        await _role_with_a_broken_writer()
    (error,) = caught.value.exceptions
    assert isinstance(error, HubError)
    assert "writer loop ended by a stray cancellation" in str(error)


async def test_a_shutdown_still_cancels_the_loop() -> None:
    task = asyncio.create_task(_essential("writer", asyncio.sleep(30)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_task_dump_names_each_task_and_where_it_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    parked = asyncio.create_task(asyncio.Event().wait(), name="parked-writer")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="protocol.taskdump"):
        dump_tasks()
    parked.cancel()
    (record,) = caplog.records
    assert "--- task parked-writer" in record.getMessage()
    assert "in wait" in record.getMessage()  # the frame it is parked in
