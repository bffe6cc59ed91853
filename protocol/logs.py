"""Log output shared by every long-running command: today's text lines, or one JSON object a line.

The format comes from a command's `--log-format` option, else `OUTPOST_LOG_FORMAT`, else
"text" (`resolve_log_format`); `configure_logging` installs it on the root logger. JSON lines
carry `ts`, `level`, `logger`, `msg`, `role`, `pid`, `exc` when there is a traceback, and the
`extra={...}` attributes of the call.

Example:
    >>> import io, json, logging
    >>> out = io.StringIO()
    >>> handler = logging.StreamHandler(out)
    >>> handler.setFormatter(JsonFormatter(role="hub-api"))
    >>> log = logging.getLogger("hub.demo")
    >>> log.addHandler(handler)
    >>> log.warning("device %s offline", "amr-7", extra={"site": "north"})
    >>> log.removeHandler(handler)
    >>> line = json.loads(out.getvalue())
    >>> line["msg"], line["level"], line["role"], line["site"]
    ('device amr-7 offline', 'WARNING', 'hub-api', 'north')
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO, get_args

from protocol.errors import OutpostError

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)
LOG_FORMAT_ENV = "OUTPOST_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; whatever else a record carries came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",  # a LogRecord attribute from Python 3.12
}


class LogFormatError(OutpostError, ValueError):
    """A log format that is neither "text" nor "json"; the message names where it came from."""


def resolve_log_format(
    option: str | None, *, environ: Mapping[str, str] | None = None
) -> LogFormat:
    """The `--log-format` value if given, else `OUTPOST_LOG_FORMAT`, else "text".

    Example:
        >>> resolve_log_format(None, environ={"OUTPOST_LOG_FORMAT": "JSON"})
        'json'
        >>> resolve_log_format("xml", environ={})
        Traceback (most recent call last):
        ...
        protocol.logs.LogFormatError: --log-format 'xml' is not one of text, json
    """
    env = os.environ if environ is None else environ
    if option is not None:
        source, value = "--log-format", option
    else:  # unset or empty: text
        source, value = LOG_FORMAT_ENV, env.get(LOG_FORMAT_ENV) or "text"
    for known in LOG_FORMATS:
        if value.strip().lower() == known:
            return known
    raise LogFormatError(f"{source} {value!r} is not one of {', '.join(LOG_FORMATS)}")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line, for journald, Kubernetes and `jq`."""

    def __init__(self, *, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object: core fields first, then the call's extras."""
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "role": self.role,
            "pid": record.process if record.process is not None else os.getpid(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in doc:  # an extra never hides a core field
                doc[key] = _jsonable(value)
        return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _jsonable(value: Any) -> Any:
    """The value itself if it is JSON (no NaN: `jq` refuses it), else its repr."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return repr(value)
    return value


def configure_logging(
    level: str | int, fmt: LogFormat, *, role: str, stream: TextIO | None = None
) -> None:
    """Send the root logger's records to `stream` (default: the current stderr) as `fmt`.

    Replaces any handler already on the root logger, so calling it twice writes each line once.
    `role` names the process in JSON lines: hub-api, hub-ingest, edge-agent, sim, ...
    """
    handler: logging.StreamHandler[TextIO] = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    if fmt == "json":
        handler.setFormatter(JsonFormatter(role=role))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is when a record is emitted, not when it was made.

    A command run in-process by a test runner gets a stand-in stderr that is closed
    afterwards; a handler holding it would fail on every later record.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # always the current stderr
