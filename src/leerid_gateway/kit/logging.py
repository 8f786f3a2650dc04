"""Logging in one place: JSON lines on stdout, each carrying the request id of the request it is about.

``serve`` and ``demo`` call :func:`configure_logging` once; uvicorn's own loggers go through the same
handler (uvicorn is started with ``log_config=None``). What is logged never holds personal data:
messages are written by us with codes, never with a pupil's attributes, and the request line has the
route template, not the URL (a /callback query carries the authorization code).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, TextIO

from leerid_gateway.kit.middleware import request_id_var

# The attributes every LogRecord has; anything else was passed with ``extra=`` and is kept.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


# Made once: json.dumps() with any non-default argument builds a new encoder for every line.
_ENCODE = json.JSONEncoder(default=str, ensure_ascii=False).encode


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: a traceback's locals and messages may quote request data.
            entry["exception"] = record.exc_info[0].__name__
        return _ENCODE(entry)


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
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)  # the root's level decides
        logger.propagate = True
    # Our request line replaces uvicorn's access log (which would print the query string); httpx's
    # per-call INFO line prints full upstream URLs: the upstream latency metric replaces it.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
