"""Structured logs: one JSON line per request with the route template and the request id, which also
travels to ACM; never a query string, cookie or body (issue 7)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from leerid_gateway.kit.logging import JsonFormatter, configure_logging, iso_millis, log_info, request_id_var
from tests.e2e.conftest import World
from tests.support.logs import captured


async def test_one_line_per_request_with_template_status_duration_and_request_id(world: World) -> None:
    with captured("leerid_gateway.request", JsonFormatter()) as stream:
        callback = httpx.get(
            f"{world.url}/callback",
            params={"code": "SECRET-CODE-123", "state": "SECRET-STATE"},
            headers={"X-Request-ID": "probe-1", "Cookie": "session=SECRET-COOKIE"},
        )
        unknown = httpx.get(f"{world.url}/no/such/SECRET-PATH?x=1")
        made_up = httpx.get(f"{world.url}/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert callback.status_code == 400 and unknown.status_code == 404
    text = stream.getvalue()
    assert "SECRET" not in text  # no query string, cookie or unknown path
    lines = [json.loads(line) for line in text.splitlines()]
    by_id = {line["request_id"]: line for line in lines}
    line = by_id["probe-1"]
    assert line["method"] == "GET" and line["path"] == "/callback" and line["status"] == 400
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["level"] == "info" and line["time"].endswith("+00:00")
    assert any(entry["path"] == "<unmatched>" and entry["status"] == 404 for entry in lines)
    generated = made_up.headers["X-Request-ID"]
    assert generated != "bad id with spaces" and by_id[generated]["path"] == "/healthz"


async def test_the_request_id_travels_to_acm(world: World) -> None:
    seen: dict[str, str | None] = {}

    def record(path: str) -> Any:
        async def handler(scope: Any, receive: Any, send: Any, app: Any) -> None:
            headers = dict(scope["headers"])
            seen[path] = headers.get(b"x-request-id", b"").decode() or None
            await app(scope, receive, send)

        return handler

    for path in ("/token", "/userinfo"):
        world.faults.overrides[path] = record(path)
    world.browser.http.headers["X-Request-ID"] = "journey-42"
    assert world.login("lotte").status_code == 303
    assert seen == {"/token": "journey-42", "/userinfo": "journey-42"}


def test_configure_logging_writes_json_with_the_request_id_and_no_traceback_text() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        configure_logging("info", stream)
        token = request_id_var.set("rid-7")
        try:
            logging.getLogger("uvicorn.error").info("Started server process")
            logging.getLogger("httpx").info("HTTP Request: GET https://acm.example/userinfo")
            try:
                raise ValueError("pupil Lotte Peeters")
            except ValueError:
                logging.getLogger("leerid_gateway").exception("unhandled", extra={"kind": "x"})
        finally:
            request_id_var.reset(token)
        logging.getLogger("leerid_gateway").debug("not at info")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["Started server process", "unhandled"]
    assert all(line["request_id"] == "rid-7" for line in lines)
    assert lines[1]["exception"] == "ValueError" and lines[1]["kind"] == "x"
    assert "Lotte" not in stream.getvalue()


# --- the request line's fast path (kit/logging.log_info) -------------------------------------------


@contextlib.contextmanager
def _lookups_off() -> Iterator[None]:
    """What configure_logging sets (the fast path is taken only then)."""
    names = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks")
    saved = {name: getattr(logging, name) for name in names if hasattr(logging, name)}
    for name in saved:
        setattr(logging, name, None if name == "_srcfile" else False)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(logging, name, value)


FIELDS = {"method": "GET", "path": "/admin/pupils/{sub}", "status": 303, "duration_ms": 7.5}


def test_log_info_writes_the_line_logger_info_writes() -> None:
    token = request_id_var.set('rid-"9"')
    try:
        with _lookups_off(), captured("leerid_gateway.request", JsonFormatter()) as stream:
            log = logging.getLogger("leerid_gateway.request")
            log_info(log, "GET /x %d %s", (303, "50%"), dict(FIELDS))
            log.info("GET /x %d %s", 303, "50%", extra=dict(FIELDS))
    finally:
        request_id_var.reset(token)
    fast, slow = (json.loads(line, object_pairs_hook=list) for line in stream.getvalue().splitlines())
    assert [key for key, _ in fast] == [key for key, _ in slow]
    assert [key for key, _ in fast] == ["time", "level", "logger", "message", "request_id", *FIELDS]
    assert dict(fast) | {"time": ""} == dict(slow) | {"time": ""}
    assert dict(fast)["message"] == "GET /x 303 50%" and dict(fast)["request_id"] == 'rid-"9"'


def test_log_info_makes_the_record_logger_info_makes() -> None:
    records: list[logging.LogRecord] = []

    def keep(record: logging.LogRecord) -> bool:
        records.append(record)
        return True

    before = time.time()
    with _lookups_off(), captured("leerid_gateway.request", JsonFormatter()) as stream:
        log = logging.getLogger("leerid_gateway.request")
        log.addFilter(keep)
        try:
            log_info(log, "%s %s %d", ("GET", "/x", 303), dict(FIELDS))
            log.info("%s %s %d", "GET", "/x", 303, extra=dict(FIELDS))
        finally:
            log.removeFilter(keep)
    fast, slow = (vars(record) for record in records)
    assert set(fast) - {"_fields"} == set(slow)
    moments = {"created", "msecs", "relativeCreated"}
    assert {k: v for k, v in fast.items() if k in slow and k not in moments} == {
        k: v for k, v in slow.items() if k not in moments
    }
    assert (fast["msg"], fast["args"]) == ("%s %s %d", ("GET", "/x", 303))  # one template per line kind
    assert before <= fast["created"] <= slow["created"] <= time.time()
    assert fast["msecs"] == int((fast["created"] - int(fast["created"])) * 1000)
    assert (
        abs((slow["relativeCreated"] - fast["relativeCreated"]) - 1000 * (slow["created"] - fast["created"]))
        < 1
    )
    written = json.loads(stream.getvalue().splitlines()[0])["time"]
    assert written == dt.datetime.fromtimestamp(fast["created"], dt.UTC).isoformat(timespec="milliseconds")


def test_log_info_yields_to_record_factories_renaming_filters_and_reserved_names() -> None:
    made = logging.getLogRecordFactory()

    def traced(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = made(*args, **kwargs)
        record.otelTraceID = "0af7651916cd43dd8448eb211c80319c"  # what OpenTelemetry's factory adds
        return record

    def renamed(record: logging.LogRecord) -> bool:
        record.duration_s = record.__dict__.pop("duration_ms") / 1000
        return True

    with _lookups_off(), captured("leerid_gateway.request", JsonFormatter()) as stream:
        log = logging.getLogger("leerid_gateway.request")
        logging.setLogRecordFactory(traced)
        try:
            log_info(log, "traced", (), dict(FIELDS))
        finally:
            logging.setLogRecordFactory(made)
        log.addFilter(renamed)
        try:
            log_info(log, "renamed", (), dict(FIELDS))
        finally:
            log.removeFilter(renamed)
        with pytest.raises(KeyError, match="overwrite"):  # as logger.info refuses it
            log_info(log, "reserved", (), {"name": "x"})
    traced_line, renamed_line = (json.loads(line) for line in stream.getvalue().splitlines())
    assert traced_line["otelTraceID"] == "0af7651916cd43dd8448eb211c80319c"
    assert renamed_line["duration_s"] == 0.0075 and "duration_ms" not in renamed_line


def test_log_info_records_serve_any_formatter_and_filter() -> None:
    plain = logging.Formatter("%(name)s %(levelname)s %(message)s %(path)s %(status)d %(funcName)s")
    with _lookups_off(), captured("leerid_gateway.request", plain) as stream:
        log = logging.getLogger("leerid_gateway.request")
        log_info(log, "one", (), dict(FIELDS))
        log.info("one", extra=dict(FIELDS))
    fast, slow = stream.getvalue().splitlines()
    assert fast == slow == "leerid_gateway.request INFO one /admin/pupils/{sub} 303 (unknown function)"

    def tag(record: logging.LogRecord) -> bool:
        record.replica = "b"  # an operator's filter adds a field: the JSON line must show it
        return True

    with _lookups_off(), captured("leerid_gateway.request", JsonFormatter()) as stream:
        log = logging.getLogger("leerid_gateway.request")
        log.addFilter(tag)
        try:
            log_info(log, "two", (), dict(FIELDS))
        finally:
            log.removeFilter(tag)
    assert json.loads(stream.getvalue())["replica"] == "b"


def test_log_info_honours_levels_disabling_and_the_lookups() -> None:
    with _lookups_off(), captured("leerid_gateway.request", JsonFormatter()) as stream:
        log = logging.getLogger("leerid_gateway.request")
        log.setLevel(logging.WARNING)
        log_info(log, "not at warning", (), {})
        log.setLevel(logging.INFO)
        log.disabled = True
        try:
            log_info(log, "disabled", (), {})
        finally:
            log.disabled = False
        log_info(log, "no fields", (), {})
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["no fields"]

    seen: list[logging.LogRecord] = []
    with captured("leerid_gateway.request", JsonFormatter()):
        log = logging.getLogger("leerid_gateway.request")
        log.addFilter(seen.append)  # type: ignore[arg-type]
        saved = logging.logThreads
        logging.logThreads = True
        try:
            log_info(log, "with threads", (), {})
        finally:
            logging.logThreads = saved
            log.removeFilter(seen.append)  # type: ignore[arg-type]
    assert seen[0].thread is not None  # logging gathered it: logger.info itself made the record


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False, allow_infinity=False))
@example(1_764_680_000.9995)
@example(1_764_680_000.9999995)
@example(1_764_680_000.0000005)
@example(1_764_680_000.0015)
@example(0.0)
def test_iso_millis_is_datetimes_isoformat(created: float) -> None:
    expected = dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds")
    assert iso_millis(created) == expected
