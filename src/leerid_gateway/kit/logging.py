"""Logging in one place: JSON lines on stdout, each carrying the request id of the request it is about.

``serve`` and ``demo`` call :func:`configure_logging` once; uvicorn's own loggers go through the same
handler (uvicorn is started with ``log_config=None``). What is logged never holds personal data:
messages are written by us with codes, never with a pupil's attributes, and the request line has the
route template, not the URL (a /callback query carries the authorization code).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

# The id of the request being served (kit/edge.py sets it), on every line written meanwhile.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# The attributes every LogRecord has; anything else was passed with ``extra=`` and is kept.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


# Made once: json.dumps() with any non-default argument builds a new encoder for every line.
_ENCODE = json.JSONEncoder(default=str, ensure_ascii=False).encode


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": iso_millis(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        attrs = record.__dict__
        fast = attrs.get("_fields")
        if fast is not None and fast[1] == len(attrs) and all(name in attrs for name in fast[0]):
            # A record of log_info() that nothing added to or renamed in: its extra fields are these.
            for name in fast[0]:
                entry[name] = attrs[name]
        else:
            for key, value in attrs.items():
                if key not in _STANDARD and not key.startswith("_"):
                    entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: a traceback's locals and messages may quote request data.
            entry["exception"] = record.exc_info[0].__name__
        return _ENCODE(entry)


_second = -1
_second_text = ""


def iso_millis(created: float) -> str:
    """``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``, the date and time
    of day made once per second: the same rounding to the microsecond (half to even), then cut to
    the millisecond."""
    global _second, _second_text
    whole = int(created)
    micros = round((created - whole) * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    if whole != _second:
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = whole
    return f"{_second_text}.{micros // 1000:03d}+00:00"


_TEMPLATES: dict[str, dict[str, Any]] = {}


def log_info(logger: logging.Logger, message: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
    """``logger.info(message, *args, extra=fields)`` for the line written on every request
    (kit/edge.py), in about a quarter of the CPU: the same record goes to the same filters and
    handlers, but it is made from a per-logger copy of what ``LogRecord`` sets (none of it changes
    from line to line once configure_logging has turned off the caller, thread, process and task
    lookups), and the JsonFormatter takes its fields without looking for them among the record's
    attributes. With any of those lookups on, it is ``logger.info`` itself. docs/performance.md,
    session 8: the two request lines of a login were 4-7 % of its CPU."""
    if not logger.isEnabledFor(logging.INFO):
        return
    if (
        logging._srcfile is not None
        or logging.logThreads
        or logging.logProcesses
        or logging.logMultiprocessing
        or getattr(logging, "logAsyncioTasks", False)  # Python 3.12+: the task's name
        or logging.getLogRecordFactory() is not logging.LogRecord  # a factory adds its own (OpenTelemetry)
        or type(logger).makeRecord is not logging.Logger.makeRecord
    ):
        logger.info(message, *args, extra=fields)
        return
    template = _TEMPLATES.get(logger.name)
    if template is None:
        made = logging.LogRecord(
            logger.name, logging.INFO, "(unknown file)", 0, "", (), None, "(unknown function)", None
        )
        template = _TEMPLATES[logger.name] = dict(vars(made))
    if not template.keys().isdisjoint(fields):
        logger.info(message, *args, extra=fields)  # which refuses to overwrite a record's own attribute
        return
    record = logging.LogRecord.__new__(logging.LogRecord)
    attrs = record.__dict__
    attrs.update(template)
    now = time.time()
    attrs["created"] = now
    attrs["msecs"] = int((now - int(now)) * 1000) + 0.0
    attrs["relativeCreated"] = (now - _START) * 1000
    # As LogRecord does, a lone mapping is the arguments themselves ("%(name)s" formatting).
    lone = len(args) == 1 and isinstance(args[0], Mapping) and args[0]
    attrs["msg"], attrs["args"] = message, args[0] if lone else args
    attrs.update(fields)
    attrs["_fields"] = (tuple(fields), len(attrs) + 1)
    logger.handle(record)


_PROBE = logging.makeLogRecord({})
_START = _PROBE.created - _PROBE.relativeCreated / 1000  # logging's start, which relativeCreated counts from


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Route the root logger (and uvicorn's, which propagate to it) to one JSON handler."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # What a record gathers and no line of ours prints (the logging HOWTO, "Optimization"): the
    # caller's file and line (a walk up the stack for every record: ASGI stacks are deep), the
    # thread and the process. Two request lines per login cost ~4 % of its CPU before.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):
        logging.logAsyncioTasks = False  # the running task's name, looked up for every record
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)  # the root's level decides
        logger.propagate = True
    # Our request line replaces uvicorn's access log (which would print the query string); httpx's
    # per-call INFO line prints full upstream URLs: the upstream latency metric replaces it.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
