"""`kill -USR1 <pid>`: write every asyncio task's stack to the log, without stopping.

For the operator or developer facing a process that runs but does nothing: the
dump shows which await each task is parked on (a Kafka commit, a database
query, an MQTT publish), which a thread dump (py-spy) cannot show.

Example:
    >>> async def main() -> None:  # doctest: +SKIP
    ...     install_task_dump()  # then: kill -USR1 <pid>
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal

logger = logging.getLogger(__name__)

STACK_LIMIT = 30
"""Frames shown per task: enough to reach the library call a task is parked in."""


def install_task_dump(sig: signal.Signals = signal.SIGUSR1) -> None:
    """Log all tasks' stacks whenever this process receives `sig` (call inside the loop).

    Only a loop in the main thread can take signals; elsewhere (a hub run inside a
    test's thread) this does nothing.
    """
    try:
        asyncio.get_running_loop().add_signal_handler(sig, dump_tasks)
    except (ValueError, RuntimeError):  # not the main thread
        logger.debug("task dump on %s not installed: not the main thread", sig.name)


def dump_tasks() -> None:
    """Log one WARNING record holding every pending task with its stack."""
    out = io.StringIO()
    tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    for task in tasks:
        out.write(f"--- task {task.get_name()}: {task.get_coro()!r}\n")
        task.print_stack(limit=STACK_LIMIT, file=out)
    logger.warning("task dump (%d tasks):\n%s", len(tasks), out.getvalue())
