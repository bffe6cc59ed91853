"""Password hashing for users: argon2id (the same hasher as device credentials), off the loop.

Checking a password costs tens of milliseconds of CPU by design, so both calls
run in a worker thread. An unknown user is checked against a dummy hash, so the
response time does not tell which usernames exist.
"""

from __future__ import annotations

import asyncio
import functools

from hub.storage.repositories.credentials import hash_password, password_matches


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not a password of anyone")


async def hash_user_password(password: str) -> str:
    """The argon2id hash to store."""
    return await asyncio.to_thread(hash_password, password)


async def check_user_password(stored_hash: str | None, password: str) -> bool:
    """Whether `password` matches; always False (after the same work) when there is no hash."""
    if stored_hash is None:
        await asyncio.to_thread(lambda: password_matches(_dummy_hash(), password))
        return False
    return await asyncio.to_thread(password_matches, stored_hash, password)
