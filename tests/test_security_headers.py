"""kit/edge.py: the request id echoed, and the security headers on every response, each only
where the application set none of its own (a pure ASGI middleware, called here as a server would)."""

from __future__ import annotations

from typing import Any

from leerid_gateway.kit.edge import API_CSP, EdgeMiddleware
from leerid_gateway.kit.logging import request_id_var


async def _answer(
    headers: list[tuple[bytes, bytes]],
    *,
    path: str = "/token",
    request_id: bytes | None = None,
    hsts: bool = True,
) -> dict[bytes, list[bytes]]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["request_id"] = request_id_var.get()
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b"{}"})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(b"x-request-id", request_id)] if request_id is not None else [],
    }
    middleware = EdgeMiddleware(app, hsts=hsts, page_form_targets="https://acm.example")
    await middleware(scope, receive, send)
    assert sent[1]["body"] == b"{}"
    fields: dict[bytes, list[bytes]] = {}
    for name, value in sent[0]["headers"]:
        fields.setdefault(name, []).append(value)
    fields[b"(seen request id)"] = [str(seen["request_id"]).encode()]
    return fields


async def test_an_api_answer_gets_every_header_once() -> None:
    fields = await _answer([(b"content-type", b"application/json")], request_id=b"req-1")
    assert fields[b"x-request-id"] == [b"req-1"] == fields[b"(seen request id)"]
    assert fields[b"x-content-type-options"] == [b"nosniff"]
    assert fields[b"referrer-policy"] == [b"no-referrer"]
    assert fields[b"x-frame-options"] == [b"DENY"]
    assert fields[b"cross-origin-opener-policy"] == [b"same-origin"]
    assert fields[b"content-security-policy"] == [API_CSP.encode()]
    assert fields[b"strict-transport-security"] == [b"max-age=31536000; includeSubDomains"]
    assert fields[b"content-type"] == [b"application/json"]


async def test_a_page_gets_the_page_policy_and_plain_http_no_hsts() -> None:
    fields = await _answer([(b"content-type", b"text/html; charset=utf-8")], path="/callback", hsts=False)
    (csp,) = fields[b"content-security-policy"]
    assert b"style-src 'unsafe-inline'" in csp and b"form-action 'self' https://acm.example" in csp
    assert b"frame-ancestors 'none'" in csp
    assert b"strict-transport-security" not in fields


async def test_the_applications_own_headers_win_and_a_bad_request_id_is_replaced() -> None:
    own = [
        (b"content-security-policy", b"default-src 'self'"),
        (b"referrer-policy", b"same-origin"),
        (b"x-request-id", b"set-by-the-app"),
    ]
    fields = await _answer(own, request_id=b"not valid\xff")
    assert fields[b"content-security-policy"] == [b"default-src 'self'"]
    assert fields[b"referrer-policy"] == [b"same-origin"]
    (echoed,) = fields[b"x-request-id"]  # ours, once: made up, as the incoming one was unusable
    assert len(echoed) == 16 and echoed == fields[b"(seen request id)"][0]


async def test_swagger_ui_may_load_its_scripts_but_not_be_framed() -> None:
    fields = await _answer([(b"content-type", b"text/html")], path="/docs")
    assert fields[b"content-security-policy"] == [b"frame-ancestors 'none'"]
