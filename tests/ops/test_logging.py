"""Structured logs: one JSON line per request with the route template and the request id, which also
travels to ACM; never a query string, cookie or body (issue 7)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import httpx

from leerid_gateway.kit.logging import JsonFormatter, configure_logging
from leerid_gateway.kit.middleware import request_id_var
from tests.e2e.conftest import World


async def test_one_line_per_request_with_template_status_duration_and_request_id(world: World) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("leerid_gateway.request")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        callback = httpx.get(
            f"{world.url}/callback",
            params={"code": "SECRET-CODE-123", "state": "SECRET-STATE"},
            headers={"X-Request-ID": "probe-1", "Cookie": "session=SECRET-COOKIE"},
        )
        unknown = httpx.get(f"{world.url}/no/such/SECRET-PATH?x=1")
        made_up = httpx.get(f"{world.url}/healthz", headers={"X-Request-ID": "bad id with spaces"})
    finally:
        logger.removeHandler(handler)
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
