"""Storage errors: every database failure leaves `hub.storage` as a `StorageError`.

Third-party exceptions (SQLAlchemy, asyncpg, aiosqlite, the OS) are wrapped at
the boundary with `raise ... from exc`; `retriable` tells a retry loop whether
trying again can help (a lost connection, a busy SQLite file, a serialization
failure) or not (a constraint the data breaks, a missing table).

Example:
    >>> isinstance(StorageUnavailable("database is down"), StorageError)
    True
    >>> StorageUnavailable.retriable, StorageError.retriable
    (True, False)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import asyncpg  # type: ignore[import-untyped]  # no stubs; only its exception classes
from sqlalchemy import exc as sa_exc

from hub.errors import HubError

P = ParamSpec("P")
T = TypeVar("T")

# SQLSTATE classes and codes where a retry can succeed: connection exceptions (08),
# operator intervention such as a restart (57P), resource limits (53), serialization
# failure and deadlock (40001, 40P01).
_RETRIABLE_SQLSTATE_PREFIXES = ("08", "57P", "53")
_RETRIABLE_SQLSTATES = frozenset({"40001", "40P01"})
_SQLITE_BUSY_WORDS = ("database is locked", "database is busy", "database table is locked")


class StorageError(HubError):
    """A database operation failed and retrying will not help by itself."""


class StorageUnavailable(StorageError):
    """The database could not be reached or was busy; the same call may succeed later."""

    retriable = True


def _sqlstate(exc: BaseException | None) -> str | None:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return code if isinstance(code, str) else None


def is_retriable(exc: BaseException) -> bool:
    """Whether a third-party database error is transient (connection, busy, serialization)."""
    if isinstance(exc, OSError | TimeoutError | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.PostgresConnectionError):
        return True
    origin = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    code = _sqlstate(origin) or _sqlstate(getattr(origin, "__cause__", None))
    if code is not None:
        return code in _RETRIABLE_SQLSTATES or code.startswith(_RETRIABLE_SQLSTATE_PREFIXES)
    if isinstance(exc, sa_exc.InterfaceError):
        return True
    return any(word in str(origin).lower() for word in _SQLITE_BUSY_WORDS)


def wrap(exc: BaseException) -> StorageError:
    """The `StorageError` (or retriable `StorageUnavailable`) that stands for `exc`."""
    if isinstance(exc, StorageError):
        return exc
    kind = StorageUnavailable if is_retriable(exc) else StorageError
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return kind(f"{type(exc).__name__}: {text[:500]}")


_WRAPPED = (sa_exc.SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


@contextmanager
def storage_errors() -> Iterator[None]:
    """Re-raise database and OS errors raised inside the block as `StorageError`.

    Example:
        >>> with storage_errors():
        ...     raise OSError("connection refused")
        Traceback (most recent call last):
        ...
        hub.storage.errors.StorageUnavailable: OSError: connection refused
    """
    try:
        yield
    except _WRAPPED as exc:
        raise wrap(exc) from exc


def translated(
    fn: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate a repository coroutine so that it raises only `StorageError`s."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with storage_errors():
            return await fn(*args, **kwargs)

    return wrapper
