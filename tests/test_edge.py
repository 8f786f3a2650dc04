"""kit/edge.py: CORS (Starlette's for a request with an Origin; its ``Vary: Origin`` made by hand for
one without, checked against Starlette's own), and the request line, also when the app raises.
The request id and the security headers are in tests/test_security_headers.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.middleware.cors import CORSMiddleware

from leerid_gateway.kit.edge import EdgeMiddleware
from leerid_gateway.kit.logging import JsonFormatter, request_id_var
from tests.support.logs import captured

ETEACHER = "https://eteacher.example"
Fields = list[tuple[bytes, bytes]]
OURS = {
    b"x-request-id",
    b"x-content-type-options",
    b"referrer-policy",
    b"x-frame-options",
    b"cross-origin-opener-policy",
    b"content-security-policy",
    b"strict-transport-security",
}


def _endpoint(fields: Fields, status: int = 200) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": list(fields)})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def _call(app: Any, headers: Fields, method: str = "GET") -> tuple[int, Fields]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": method, "path": "/token", "headers": headers}
    await app(scope, receive, send)
    return int(sent[0]["status"]), list(sent[0].get("headers", []))


def _edge(app: Any) -> EdgeMiddleware:
    return EdgeMiddleware(app, hsts=True, page_form_targets="https://acm.example", cors_origins=[ETEACHER])


def _starlette(app: Any) -> CORSMiddleware:
    return CORSMiddleware(
        app,
        allow_origins=[ETEACHER],
        allow_credentials=True,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type", "X-Request-ID"],
        max_age=600,
    )


@pytest.mark.parametrize(
    "fields",
    [
        [(b"content-type", b"application/json")],
        [(b"vary", b"Accept-Encoding"), (b"content-type", b"application/json")],
        [(b"content-type", b"text/html"), (b"vary", b"Accept"), (b"x-a", b"1"), (b"vary", b"Cookie")],
        [(b"Vary", b"Accept"), (b"content-type", b"application/json")],  # a name Starlette never lowers
        [],
    ],
)
@pytest.mark.parametrize("origin", [None, ETEACHER.encode(), b"https://elsewhere.example", b""])
async def test_cors_answers_what_starlettes_middleware_answers(fields: Fields, origin: bytes | None) -> None:
    request = [(b"host", b"gateway"), *([(b"origin", origin)] if origin is not None else [])]
    ours = await _call(_edge(_endpoint(fields)), request)
    theirs = await _call(_starlette(_endpoint(fields)), request)
    assert ours[0] == theirs[0]
    assert [field for field in ours[1] if field[0] not in OURS] == theirs[1]


async def test_an_allowed_origin_may_read_with_credentials_and_another_may_not() -> None:
    app = _edge(_endpoint([(b"content-type", b"application/json")]))
    _, allowed = await _call(app, [(b"origin", ETEACHER.encode())])
    assert (b"access-control-allow-origin", ETEACHER.encode()) in allowed
    assert (b"access-control-allow-credentials", b"true") in allowed
    _, other = await _call(app, [(b"origin", b"https://elsewhere.example")])
    assert not any(name == b"access-control-allow-origin" for name, _ in other)
    assert (b"vary", b"Origin") in other


async def test_a_preflight_is_answered_at_the_edge_with_our_headers() -> None:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    asks = [(b"access-control-request-method", b"POST"), (b"access-control-request-headers", b"content-type")]
    status, fields = await _call(_edge(app), [(b"origin", ETEACHER.encode()), *asks], "OPTIONS")
    names = dict(fields)
    assert status == 200 and reached == []
    assert names[b"access-control-allow-origin"] == ETEACHER.encode()
    assert b"POST" in names[b"access-control-allow-methods"]
    assert names[b"access-control-max-age"] == b"600"
    assert names[b"x-content-type-options"] == b"nosniff" and len(names[b"x-request-id"]) == 16
    status, fields = await _call(_edge(app), [(b"origin", b"https://elsewhere.example"), *asks], "OPTIONS")
    assert status == 400 and b"access-control-allow-origin" not in dict(fields) and reached == []


async def test_an_app_that_raises_is_logged_as_a_500_with_its_request_id_and_the_id_is_reset() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    with captured("leerid_gateway.request", JsonFormatter()) as stream, pytest.raises(RuntimeError):
        await _call(_edge(app), [(b"x-request-id", b"req-7")])
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["status"] == 500 and line["request_id"] == "req-7" and line["path"] == "<unmatched>"
    assert request_id_var.get() is None


async def test_an_answer_already_started_is_logged_with_its_own_status() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        raise RuntimeError("after the start")

    with captured("leerid_gateway.request", JsonFormatter()) as stream, pytest.raises(RuntimeError):
        await _call(_edge(app), [])
    assert json.loads(stream.getvalue())["status"] == 201
