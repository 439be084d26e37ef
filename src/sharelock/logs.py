"""Logs as JSON lines, one object per line, through the standard library's `logging`.

Every module keeps its plain `logging.getLogger(__name__)`; what changes is the formatter on
the root handler: `structlog.stdlib.ProcessorFormatter` turns each record into

    {"timestamp": "…Z", "level": "info", "logger": "sharelock.web", "event": "…",
     "request_id": "…"}

`request_id` (and nothing else) comes from `structlog.contextvars`, bound by the access-log
middleware for the time of one request (`sharelock.web.access_log`). Extra fields are taken
from a record only if they are in `ALLOWED_EXTRA`: a call site cannot add a field by mistake.

`logging_config(settings)` is a `logging.config.dictConfig` dictionary, which is also what
uvicorn takes as `log_config`: uvicorn applies it again in each worker process it spawns, so
every process logs the same way.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from sharelock.config import Settings

# The access line's fields (`sharelock.web.access_log`); nothing else is taken from `extra`.
ALLOWED_EXTRA = ("method", "route", "status", "duration_ms")
_MAX_FRAMES = 30
_FIRST = ("timestamp", "level", "logger", "event", "request_id")
# Libraries that log wire data below WARNING: httpcore every response header it receives (a data
# source's Set-Cookie, that is a person's session at their bank, was seen at debug level), httpx
# every URL it calls (a data source may put a token in one), SQLAlchemy every bound parameter.
# They say warnings and errors only, whatever SHARELOCK_LOG_LEVEL is.
WIRE_LOGGERS = ("httpx", "httpcore", "hpack", "h2", "sqlalchemy")


def _timestamp(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """When the record was made (not when it was formatted), in UTC."""
    record: logging.LogRecord | None = event.get("_record")
    created = record.created if record is not None else datetime.now(UTC).timestamp()
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    event["timestamp"] = stamp.replace("+00:00", "Z")
    return event


def _exception_without_message(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """An exception as its type and the places it went through, without its message: the
    message of a `KeyError`, a parser's error or a driver's error can quote the very value
    being handled (a token, a credential), and the log must never carry one. The operator
    still learns what failed and where."""
    event.pop("stack_info", None)
    exc_info = event.pop("exc_info", None)
    if not exc_info:
        return event
    exc: BaseException | None
    tb: TracebackType | None
    if isinstance(exc_info, BaseException):
        exc, tb = exc_info, exc_info.__traceback__
    elif isinstance(exc_info, tuple):
        exc, tb = exc_info[1], exc_info[2]
    else:  # `exc_info=True`
        exc, tb = sys.exc_info()[1], sys.exc_info()[2]
    if exc is None:
        return event
    event["exc_type"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
    frames = [f"{f.f_code.co_filename}:{n} {f.f_code.co_name}" for f, n in traceback.walk_tb(tb)]
    event["stack"] = frames[-_MAX_FRAMES:]
    return event


def _readable_order(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """The same keys first on every line, for people reading the log without a tool."""
    first = {key: event.pop(key) for key in _FIRST if key in event}
    first.update(event)
    return first


def json_formatter() -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every handler (named in `logging_config` by its import path, so that
    uvicorn's spawned workers can build it from the configuration alone)."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            _timestamp,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.ExtraAdder(allow=ALLOWED_EXTRA),
            _exception_without_message,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _readable_order,
            structlog.processors.JSONRenderer(),
        ],
    )


def logging_config(settings: Settings) -> dict[str, Any]:
    """The whole logging set-up as a `dictConfig` dictionary (a new one each call: uvicorn
    keeps and re-applies the one it is given)."""
    level = settings.log_level.upper()
    wire_level = logging.getLevelName(max(logging.WARNING, logging.getLevelName(level)))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.json_formatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's own loggers keep no handler of their own and go through the root's.
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            # uvicorn's access log writes the raw request line (query string included): off,
            # whatever uvicorn's own `access_log` flag says. `sharelock.access` replaces it.
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
            **{name: {"level": wire_level} for name in WIRE_LOGGERS},
        },
    }


def configure_logging(settings: Settings) -> None:
    """Send every log record of this process to stderr as one JSON object per line."""
    logging.config.dictConfig(logging_config(settings))
