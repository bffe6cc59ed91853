"""Downloading a model artifact: streamed, capped in size, with the device's credentials.

`HttpFetcher` reads `http://` and `https://` URLs (a URL without a scheme is taken
relative to the hub's URL) with HTTP Basic authentication (the device's MQTT
credentials), a timeout on every network operation, and retries with capped,
jittered backoff on failures that can pass (connection errors, timeouts, HTTP 408,
429 and 5xx). A refusal that cannot pass (401, 403, 404, a body larger than the
manifest says) fails at once. `file://` URLs are read only when `allow_file` is set,
which the CLI does for local activation and the agent does not.

Example:
    >>> import asyncio, tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "a.onnx").write_bytes(b"onnx")
    4
    >>> fetcher = HttpFetcher(allow_file=True)
    >>> asyncio.run(fetcher.fetch((folder / "a.onnx").as_uri(), folder / "b", max_bytes=10))
    >>> (folder / "b").read_bytes()
    b'onnx'
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from edge_agent.errors import AgentError
from protocol.backoff import Backoff

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
_RETRIABLE_STATUS = frozenset({408, 425, 429})

Progress = Callable[[int, int | None], None]
"""Called with the bytes received so far and the total, when the server said it."""


class FetchError(AgentError):
    """A download that failed and will fail again if retried as is; the message says why."""


class FetchUnavailable(FetchError):
    """A download that failed for a reason that may pass (network, timeout, busy server)."""

    retriable = True


class Fetcher(Protocol):
    """Something that copies the bytes at `url` to `dest`, at most `max_bytes` of them."""

    async def fetch(
        self, url: str, dest: Path, *, max_bytes: int, progress: Progress | None = None
    ) -> None:
        """Write the artifact to `dest`; raise `FetchError` (or `FetchUnavailable`)."""
        ...


class HttpFetcher:
    """Downloads over HTTP(S) with Basic auth, timeouts and retries (see the module docstring)."""

    def __init__(
        self,
        *,
        base_url: str = "",
        username: str = "",
        password: str = "",
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        allow_file: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._base, self._allow_file = base_url, allow_file
        self._auth = httpx.BasicAuth(username, password) if username else None
        self._timeout, self._retries = httpx.Timeout(timeout_s), retries
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._sleep = sleep

    async def fetch(
        self, url: str, dest: Path, *, max_bytes: int, progress: Progress | None = None
    ) -> None:
        """Write the artifact at `url` to `dest`; retry what may pass, then raise `FetchError`."""
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            if not self._allow_file:
                raise FetchError(
                    "file:// URLs are accepted only for local activation "
                    "(edge-agent model activate --manifest)"
                )
            await asyncio.to_thread(_copy_file, _file_path(url), dest, max_bytes, progress)
            return
        absolute = self._absolute(url)
        backoff = Backoff(*self._backoff)
        for attempt in range(self._retries + 1):
            try:
                await self._download(absolute, dest, max_bytes, progress)
            except FetchError as exc:
                if not exc.retriable or attempt == self._retries:
                    raise
                delay = backoff.next()
                logger.warning("model download failed (%s); retrying in %.1f s", exc, delay)
                await self._sleep(delay)
            else:
                return

    def _absolute(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https"):
            return url
        if parts.scheme or not self._base:
            raise FetchError(f"cannot download {url[:200]!r}: only http(s):// URLs are fetched")
        return str(httpx.URL(self._base).join(url))

    async def _download(
        self, url: str, dest: Path, max_bytes: int, progress: Progress | None
    ) -> None:
        try:
            async with (
                httpx.AsyncClient(timeout=self._timeout, follow_redirects=True) as client,
                client.stream("GET", url, auth=self._auth) as response,
            ):
                _check_status(response, url)
                total = _declared_length(response, max_bytes)
                await _stream_to(response, dest, max_bytes, total, progress)
        except httpx.TransportError as exc:
            raise FetchUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc


def _check_status(response: httpx.Response, url: str) -> None:
    code = response.status_code
    if 200 <= code < 300:
        return
    if code in (401, 403):
        raise FetchError(f"{url}: the hub refused the device's credentials (HTTP {code})")
    if code == 404:
        raise FetchError(f"{url}: no such artifact on the hub (HTTP 404)")
    message = f"{url}: HTTP {code} {response.reason_phrase}"
    if code >= 500 or code in _RETRIABLE_STATUS:
        raise FetchUnavailable(message)
    raise FetchError(message)


def _declared_length(response: httpx.Response, max_bytes: int) -> int | None:
    text = response.headers.get("content-length")
    if text is None or not text.isdigit():
        return None
    length = int(text)
    if length > max_bytes:
        raise FetchError(f"the server sends {length} bytes; the manifest says {max_bytes}")
    return length


async def _stream_to(
    response: httpx.Response,
    dest: Path,
    max_bytes: int,
    total: int | None,
    progress: Progress | None,
) -> None:
    handle: IO[bytes] = await asyncio.to_thread(dest.open, "wb")
    try:
        received = 0
        async for chunk in response.aiter_bytes(CHUNK_BYTES):
            received += len(chunk)
            if received > max_bytes:
                raise FetchError(f"the download exceeds the manifest's {max_bytes} bytes")
            await asyncio.to_thread(handle.write, chunk)
            if progress is not None:
                progress(received, total)
        await asyncio.to_thread(handle.flush)
    finally:
        await asyncio.to_thread(handle.close)


def _file_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise FetchError(f"file URL {url[:200]!r} names a remote host")
    return Path(url2pathname(parts.path))


def _copy_file(source: Path, dest: Path, max_bytes: int, progress: Progress | None) -> None:
    try:
        total = source.stat().st_size
        if total > max_bytes:
            raise FetchError(f"{source} has {total} bytes; the manifest says {max_bytes}")
        with source.open("rb") as reader, dest.open("wb") as writer:
            copied = 0
            while chunk := reader.read(CHUNK_BYTES):
                copied += len(chunk)
                if copied > max_bytes:
                    raise FetchError(f"{source} grew past the manifest's {max_bytes} bytes")
                writer.write(chunk)
                if progress is not None:
                    progress(copied, total)
    except OSError as exc:
        raise FetchError(f"cannot copy {source}: {exc.strerror or exc}") from exc
