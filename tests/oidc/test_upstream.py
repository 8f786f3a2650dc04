"""request_json: bounded time and size, JSON objects only, typed failures (RFC 6749 §5.2 errors pass)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from leerid_gateway.kit.errors import UpstreamError
from leerid_gateway.oidc.transport import encode_head
from leerid_gateway.oidc.upstream import (
    MAX_BODY,
    _as_httpx_would,
    _quote_plus,
    _urlencoded,
    new_client,
    request_json,
)

URL = "https://acm.example/op/token"


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, using="httpx") as mock:
        yield mock


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def failure(http: httpx.AsyncClient) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await request_json(http, "token", "POST", URL)
    assert caught.value.kind == "token"
    return caught.value


async def test_json_object_is_returned_with_its_status(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.post(URL).respond(200, json={"access_token": "at", "token_type": "Bearer"})
    status, body = await request_json(http, "token", "POST", URL, data={"grant_type": "authorization_code"})
    assert (status, body) == (200, {"access_token": "at", "token_type": "Bearer"})
    assert route.calls.last.request.content == b"grant_type=authorization_code"


async def test_timeout_is_an_upstream_error(router: respx.MockRouter, http: httpx.AsyncClient) -> None:
    router.post(URL).mock(side_effect=httpx.ReadTimeout("slow"))
    assert (await failure(http)).detail == "timeout"


async def test_connect_timeout_is_an_upstream_error(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.post(URL).mock(side_effect=httpx.ConnectTimeout("slow"))
    assert (await failure(http)).detail == "timeout"


async def test_connection_refused_is_an_upstream_error(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.post(URL).mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
    error = await failure(http)
    assert error.detail == "transport error (ConnectError)"
    assert "Errno" not in str(error)  # no transport detail leaks into the error


async def test_real_connection_refused_on_a_closed_port(http: httpx.AsyncClient) -> None:
    with pytest.raises(UpstreamError, match="transport error"):
        await request_json(http, "discovery", "GET", "http://127.0.0.1:1/.well-known/openid-configuration")


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_upstream_errors_even_with_a_json_body(
    router: respx.MockRouter, http: httpx.AsyncClient, status: int
) -> None:
    router.post(URL).respond(status, json={"error": "server_error"})
    assert (await failure(http)).detail == f"HTTP {status}"


async def test_429_is_an_upstream_error_carrying_retry_after(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    """RFC 6585 §4 + RFC 9110 §10.2.3: the resilience layer decides from status and Retry-After."""
    router.post(URL).respond(429, json={"error": "slow_down"}, headers={"Retry-After": "5"})
    error = await failure(http)
    assert (error.status, error.retry_after) == (429, 5.0)


async def test_429_with_a_date_or_garbage_retry_after_has_no_delay(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.post(URL).respond(429, text="Too Many Requests", headers={"Retry-After": "soon"})
    error = await failure(http)
    assert (error.status, error.retry_after) == (429, None)


async def test_400_oauth_error_body_is_returned_to_the_caller(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    """RFC 6749 §5.2: the caller reads ``error`` to tell invalid_grant from invalid_client."""
    router.post(URL).respond(400, json={"error": "invalid_grant", "error_description": "code used"})
    status, body = await request_json(http, "token", "POST", URL)
    assert status == 400
    assert body["error"] == "invalid_grant"


@pytest.mark.parametrize("status", [301, 302, 204, 201])
async def test_non_error_statuses_outside_ok_are_upstream_errors(
    router: respx.MockRouter, http: httpx.AsyncClient, status: int
) -> None:
    router.post(URL).respond(status, json={"ok": True}, headers={"Location": "https://evil.example/"})
    assert (await failure(http)).detail == f"HTTP {status}"


async def test_status_listed_in_ok_is_accepted(router: respx.MockRouter, http: httpx.AsyncClient) -> None:
    router.post(URL).respond(201, json={"id": "x"})
    assert await request_json(http, "token", "POST", URL, ok=(200, 201)) == (201, {"id": "x"})


@pytest.mark.parametrize(
    "content",
    [b"<html>maintenance</html>", b"", b"{", b"\xff\xfe\x00", b"{'single': 'quotes'}"],
)
async def test_non_json_body_is_an_upstream_error(
    router: respx.MockRouter, http: httpx.AsyncClient, content: bytes
) -> None:
    router.post(URL).respond(200, content=content, headers={"Content-Type": "application/json"})
    assert "not JSON" in (await failure(http)).detail


@pytest.mark.parametrize("content", [b"[]", b'[{"access_token": "x"}]', b'"string"', b"42", b"null", b"true"])
async def test_json_that_is_not_an_object_is_an_upstream_error(
    router: respx.MockRouter, http: httpx.AsyncClient, content: bytes
) -> None:
    router.post(URL).respond(200, content=content)
    assert "not an object" in (await failure(http)).detail


async def test_body_larger_than_max_body_is_refused(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    padding = "x" * MAX_BODY
    router.post(URL).respond(200, content=f'{{"pad": "{padding}"}}'.encode())
    assert "larger than" in (await failure(http)).detail


async def test_body_of_exactly_max_body_is_accepted(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    skeleton = '{"pad": ""}'
    content = ('{"pad": "' + "x" * (MAX_BODY - len(skeleton)) + '"}').encode()
    assert len(content) == MAX_BODY
    router.post(URL).respond(200, content=content)
    status, body = await request_json(http, "token", "POST", URL)
    assert status == 200
    assert len(body["pad"]) == MAX_BODY - len(skeleton)


async def test_streamed_oversized_body_stops_reading_early(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += 64 * 1024
            yield b" " * (64 * 1024)

    router.post(URL).mock(side_effect=lambda request: httpx.Response(200, content=endless()))
    assert "larger than" in (await failure(http)).detail
    assert sent <= MAX_BODY + 2 * 64 * 1024


async def test_the_shared_client_keeps_no_cookie_from_one_pupils_login_for_the_next(
    router: respx.MockRouter,
) -> None:
    """One client serves every login: a cookie set during one token exchange must not be sent on
    the next (another pupil's) call."""
    sent: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("cookie"))
        return httpx.Response(200, json={"ok": True}, headers={"Set-Cookie": "acm_session=pupil-1; Path=/"})

    router.post(URL).mock(side_effect=answer)
    async with new_client(timeout=5, user_agent="test") as client:
        await request_json(client, "token", "POST", URL)
        await request_json(client, "token", "POST", URL)
        assert len(client.cookies) == 0
    assert sent == [None, None]


async def test_a_proxy_from_the_environment_is_still_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """request_json sends through the transport httpx picks for the URL: with HTTP_PROXY set that is
    httpx's own proxy transport (the gateway's Http1Transport does no proxying)."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"via": 1}\n')
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    try:
        async with new_client(timeout=5, user_agent="test") as client:
            status, body = await request_json(client, "datastore", "GET", "http://acm.example/userinfo")
    finally:
        server.close()
        await server.wait_closed()
    assert (status, body) == (200, {"via": 1})
    assert seen and seen[0].startswith(b"GET http://acm.example/userinfo HTTP/1.1\r\n")


# request_json over our own transport (oidc/transport.py) to a real loopback server: the answer is
# taken as it came off the wire, except when httpx must decode it.


def _answer(status: str, body: bytes, *fields: bytes) -> bytes:
    head = b"HTTP/1.1 " + status.encode() + b"\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


async def test_our_transport_answers_request_json_on_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    from leerid_gateway.oidc.transport import Http1Transport
    from tests.oidc.test_transport import scripted

    wrapped: list[int] = []  # the answers that became httpx responses
    as_httpx = Http1Transport.response
    noted = staticmethod(lambda a, r: wrapped.append(a.status) or as_httpx(a, r))
    monkeypatch.setattr(Http1Transport, "response", noted)

    packed = gzip.compress(b'{"ok": "gzip"}')
    answers = (
        _answer("200 OK", b'{"ok": "plain"}', b"Content-Type: application/json"),
        _answer("200 OK", packed, b"Content-Encoding: gzip"),  # httpx's decoder reads this one
        _answer("429 Too Many Requests", b"{}", b"Retry-After: 7"),
        _answer("200 OK", b'{"pad": "' + b"x" * MAX_BODY + b'"}'),
    )
    client = new_client(timeout=2, user_agent="test")
    try:
        async with scripted(*answers) as server:
            assert await request_json(client, "datastore", "GET", server.url) == (200, {"ok": "plain"})
            assert await request_json(client, "datastore", "GET", server.url) == (200, {"ok": "gzip"})
            with pytest.raises(UpstreamError) as slow_down:
                await request_json(client, "datastore", "GET", server.url)
            assert (slow_down.value.status, slow_down.value.retry_after) == (429, 7.0)
            with pytest.raises(UpstreamError, match="larger than"):
                await request_json(client, "datastore", "GET", server.url)
    finally:
        await client.aclose()
    assert wrapped == [200]  # the gzip one only


async def test_a_form_goes_out_on_the_wire_whole() -> None:
    from tests.oidc.test_transport import scripted

    form = {"grant_type": "authorization_code", "code": "a b/c&d=é", "code_verifier": "v" * 43}
    client = new_client(timeout=2, user_agent="test")
    try:
        async with scripted(_answer("200 OK", b'{"ok": 1}')) as server:
            answer = await request_json(client, "token", "POST", server.url, data=form, headers={"X-A": "1"})
            sent = server.requests[0]
    finally:
        await client.aclose()
    assert answer == (200, {"ok": 1})
    head, _, body = sent.partition(b"\r\n\r\n")
    assert body == b"grant_type=authorization_code&code=a+b%2Fc%26d%3D%C3%A9&code_verifier=" + b"v" * 43
    assert f"\r\nContent-Length: {len(body)}\r\n".encode() in head
    assert b"\r\nContent-Type: application/x-www-form-urlencoded" in head and b"\r\nX-A: 1\r\n" in head


# --- the login's calls, encoded without an httpx request (upstream._as_httpx_would) ---------------

_LOGIN_CALLS = [
    (
        "POST",
        "http://127.0.0.1:8123/op/token",
        {
            "data": {"grant_type": "authorization_code", "code": "a b/c&d=é+%", "code_verifier": "v" * 43},
            "headers": {"Accept": "application/json", "Authorization": "Basic YTpi", "X-Request-ID": "r-1"},
        },
    ),
    ("POST", "https://acm.example/op/token", {"data": {"a": "1"}, "headers": {"accept": "application/json"}}),
    (
        "GET",
        "https://acm.example:443/userinfo?schema=openid&x=%2F",
        {"headers": {"Authorization": "Bearer t.o.k", "Accept": "application/json", "User-Agent": "other/2"}},
    ),
    ("GET", "http://[::1]:8080/.well-known/openid-configuration", {}),
    ("GET", "https://datastore.example/leerlingen/ik", {"headers": {}}),
]


@pytest.mark.parametrize(("method", "url", "kwargs"), _LOGIN_CALLS)
async def test_the_login_calls_go_out_byte_for_byte_as_httpx_builds_them(
    method: str, url: str, kwargs: dict[str, Any]
) -> None:
    client = new_client(timeout=2, user_agent="leerid-gateway/test")
    try:
        parsed = httpx.URL(url)
        request = client.build_request(method, parsed, **kwargs)
        expected = (encode_head(request.method, request.url, request.headers.raw), request.read())
        assert _as_httpx_would(client, method, parsed, kwargs) == expected
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("GET", {"params": {"a": "b"}}),
        ("POST", {"json": {"a": "b"}}),
        ("POST", {"content": b"raw"}),
        ("POST", {"headers": {}}),  # a POST without a form
        ("POST", {"data": {}}),  # an empty one: httpx sends Content-Length: 0 and no Content-Type
        ("GET", {"data": {"a": "b"}}),
        ("PUT", {"data": {"a": "b"}}),
        ("POST", {"data": {"n": 5}}),
        ("GET", {"headers": {"Accept": "a", "accept": "b"}}),
        ("GET", {"headers": {"Host": "elsewhere.example"}}),
        ("POST", {"data": {"a": "b"}, "headers": {"Content-Type": "text/plain"}}),
    ],
)
async def test_anything_else_is_left_to_httpx(method: str, kwargs: dict[str, Any]) -> None:
    client = new_client(timeout=2, user_agent="leerid-gateway/test")
    try:
        assert _as_httpx_would(client, method, httpx.URL(URL), kwargs) is None
    finally:
        await client.aclose()
    for own in (
        {"base_url": "https://acm.example/op/"},
        {"params": {"a": "b"}},
        {"auth": ("a", "b")},
        {"headers": {"Host": "other.example"}},  # a field httpx frames itself, set on the client
        {"headers": {"content-type": "text/plain"}},
    ):
        async with httpx.AsyncClient(**own) as other:  # type: ignore[arg-type]
            assert _as_httpx_would(other, "GET", httpx.URL(URL), {}) is None
    async with httpx.AsyncClient(cookies={"a": "b"}) as with_cookies:
        assert _as_httpx_would(with_cookies, "GET", httpx.URL(URL), {}) is None


async def test_a_header_value_that_could_split_the_request_is_refused_on_either_path() -> None:
    client = new_client(timeout=2, user_agent="leerid-gateway/test")
    try:
        with pytest.raises(httpx.LocalProtocolError):
            _as_httpx_would(client, "GET", httpx.URL(URL), {"headers": {"Authorization": "Bearer a\r\nX: y"}})
    finally:
        await client.aclose()


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=24), max_size=5))
def test_a_form_is_encoded_as_urlencode_encodes_it(form: dict[str, str]) -> None:
    assert _urlencoded(form) == urlencode(form)


@given(st.text(max_size=40))
def test_a_value_is_quoted_as_quote_plus_quotes_it(text: str) -> None:
    assert _quote_plus(text) == quote_plus(text)


def test_a_lone_surrogate_is_refused_as_quote_plus_refuses_it() -> None:
    for quote in (quote_plus, _quote_plus):
        with pytest.raises(UnicodeEncodeError):
            quote("a\ud800b")
