"""Malicious input through the real HTTP stack: open redirects, oversized and malformed requests,
forged session cookies, invalid UTF-8. Always a clear 4xx (RFC-shaped JSON for APIs, a Dutch page
on /login and /callback), never a 500, never a stack trace; security headers on every response."""

from __future__ import annotations

import base64
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from leerid_gateway.app import create_app
from leerid_gateway.oidc.models import LoginTransaction
from leerid_gateway.sessions.models import BrowserSession
from leerid_gateway.settings import Settings
from tests.e2e.conftest import RETURN_TO, World
from tests.hostile.support import (
    BAD_LINK_PAGE,
    EXPIRED_PAGE,
    assert_no_stack_trace,
    assert_nothing_stored_at_all,
    assert_refused_page,
)

PUPIL_PATHS = ("/login", "/callback")
JSON_TYPES = ("application/json", "application/problem+json")
TWO_MB = 2 * 1024 * 1024
EVIL = "evil.example"

OPEN_REDIRECTS = [
    f"//{EVIL}/app/",
    f"///{EVIL}/app/",
    f"https:{EVIL}/app/",
    f"https://eteacher.example@{EVIL}/app/",
    f"https://eteacher.example:443@{EVIL}/app/",
    f"https://eteacher.example%40{EVIL}/app/",
    f"https://{EVIL}%2f@eteacher.example/app/",
    f"https://{EVIL}/https://eteacher.example/app/",
    f"https://eteacher.example.{EVIL}/app/",
    f"https://{EVIL}#https://eteacher.example/app/",
    f"https://{EVIL}?https://eteacher.example/app/",
    # backslashes (browsers read them as slashes)
    f"https:\\\\{EVIL}/app/",
    f"https://eteacher.example\\@{EVIL}/app/",
    f"/\\{EVIL}/app/",
    f"\\\\{EVIL}\\app\\",
    f"https://eteacher.example/app/\\..\\..\\{EVIL}",
    # mixed case
    f"HtTpS://{EVIL.upper()}/app/",
    f"https://ETEACHER.example.{EVIL}/app/",
    "JaVaScRiPt:alert(document.domain)//https://eteacher.example/app/",
    # encoded and double-encoded characters (each value is encoded once more on the wire)
    f"https%3A%2F%2F{EVIL}%2Fapp%2F",
    f"%2F%2F{EVIL}/app/",
    f"%252F%252F{EVIL}/app/",
    f"https://eteacher.example/app/%2e%2e/%2e%2e/{EVIL}",
    f"https://eteacher.example/app%2f..%2f..%2f{EVIL}",
    f"https://eteacher.example/app/%252e%252e/{EVIL}",
    "https://eteacher.example/app/%5c%5cevil.example",
    "https://eteacher.example/app/../admin",
    "https://eteacher.example/application/",
    # CR/LF, tabs, NUL, other control characters and non-ASCII look-alikes
    f"https://eteacher.example/app/\r\nLocation: https://{EVIL}/",
    f"https://eteacher.example/app/\nSet-Cookie: leerid_session={EVIL}",
    f"ht\ttps://{EVIL}/app/",
    f"https://eteacher.example\t.{EVIL}/app/",
    "https://eteacher.example/app/\x00",
    f"https://eteacher.example。{EVIL}/app/",
    "https://\uff45teacher.example/app/",  # fullwidth e
    "https://eteacher.example/app/\u202e",
    # other schemes, ports, downgrades
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "ftp://eteacher.example/app/",
    "http://eteacher.example/app/",
    "https://eteacher.example:8443/app/",
    "https://eteacher.example:99999/app/",
    "https://[::1]/app/",
    # reflection attempts and nothing at all
    '"><script>alert(1)</script>',
    "",
    " ",
]

VERY_LONG = [RETURN_TO + "a" * 2100, RETURN_TO + "a" * 60_000]  # httpx itself stops at 64 kB


def _routes(settings: Settings) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, path parameters filled with a dummy."""
    found = []
    for route in create_app(settings).routes:
        if isinstance(route, APIRoute):
            path = route.path.replace("{sub}", "00000000-0000-0000-0000-000000000000")
            path = path.replace("{report_id}", "1")
            found += [(method, path) for method in sorted(route.methods)]
    return found


def assert_clear_client_error(answer: httpx.Response, path: str) -> None:
    """A 4xx in the shape the path promises, or a success: never a 5xx, never a stack trace."""
    assert answer.status_code < 500, f"{path}: {answer.status_code} {answer.text[:300]}"
    assert_no_stack_trace(answer)
    if answer.status_code >= 400:
        content_type = answer.headers.get("content-type", "")
        if path.startswith(PUPIL_PATHS):
            assert content_type.startswith("text/html"), f"{path}: {content_type}"
            assert 'lang="nl"' in answer.text
        else:
            assert content_type.startswith(JSON_TYPES), f"{path}: {content_type} {answer.text[:200]}"
            body = answer.json()
            assert "error" in body or {"title", "status"} <= body.keys(), f"{path}: {body}"


def assert_security_headers(answer: httpx.Response) -> None:
    where = f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}"
    csp = answer.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, where
    assert answer.headers.get("referrer-policy") == "no-referrer", where
    assert answer.headers.get("x-content-type-options") == "nosniff", where


def assert_no_store(answer: httpx.Response) -> None:
    where = f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}"
    assert "no-store" in answer.headers.get("cache-control", ""), where


# --- open redirects through the real /login --------------------------------------------------------
async def test_open_redirects_are_refused_by_login(world: World) -> None:
    failures = []
    for target in [*OPEN_REDIRECTS, *VERY_LONG]:
        answer = world.browser.http.get(f"{world.url}/login", params={"return_to": target})
        problem = _redirect_refusal_problem(answer)
        if problem:
            failures.append(f"{target[:80]!r}: {problem}")
    assert not failures, "\n".join(failures)
    assert await world.count(LoginTransaction) == 0
    await assert_nothing_stored_at_all(world)


async def test_open_redirects_are_refused_by_logout(world: World) -> None:
    failures = []
    for target in OPEN_REDIRECTS[:20]:
        answer = world.browser.http.post(f"{world.url}/logout", params={"return_to": target})
        if answer.status_code != 400 or "location" in answer.headers or EVIL in answer.text.lower():
            failures.append(f"{target!r}: {answer.status_code} {answer.headers.get('location')}")
        assert_no_stack_trace(answer)
    assert not failures, "\n".join(failures)


def _redirect_refusal_problem(answer: httpx.Response) -> str | None:
    if answer.status_code != 400:
        return f"status {answer.status_code} location={answer.headers.get('location')}"
    if "location" in answer.headers:
        return "has a Location header"
    if not answer.headers.get("content-type", "").startswith("text/html") or BAD_LINK_PAGE not in answer.text:
        return "not the Dutch page"
    if EVIL in answer.text.lower() or "<script>alert" in answer.text:
        return "reflects the attacker's value"
    if "Traceback" in answer.text or 'File "' in answer.text:
        return "stack trace"
    return None


async def test_port_zero_is_not_the_default_port(world: World) -> None:
    """return_to.py `_port()` reads `parts.port or 443`, so port 0 counts as the default port and
    `https://eteacher.example:0/app/` passes as if it were `https://eteacher.example/app/`."""
    answer = world.browser.http.get(
        f"{world.url}/login", params={"return_to": "https://eteacher.example:0/app/"}
    )
    assert _redirect_refusal_problem(answer) is None
    assert await world.count(LoginTransaction) == 0


@pytest.mark.parametrize("encoded", ["%0d%0aLocation:%20https://evil.example/", "%00", "%0a", "%09"])
async def test_encoded_control_characters_in_return_to(world: World, encoded: str) -> None:
    answer = world.browser.http.get(f"{world.url}/login", params={"return_to": RETURN_TO + encoded})
    assert _redirect_refusal_problem(answer) is None


@pytest.mark.parametrize("raw", ["return_to", "return_to=", "return_to=%", "return_to=%zz", "x=1"])
async def test_malformed_return_to_query(world: World, raw: str) -> None:
    answer = world.browser.http.get(f"{world.url}/login?{raw}")
    assert_refused_page(answer, 400, BAD_LINK_PAGE)
    assert await world.count(LoginTransaction) == 0


@pytest.mark.parametrize("order", ["evil-first", "evil-last"])
async def test_duplicated_return_to_never_redirects_elsewhere(world: World, order: str) -> None:
    """Parameter pollution: whichever value the gateway checks is the one it later redirects to."""
    evil = f"https://{EVIL}/app/"
    pair = [("return_to", evil), ("return_to", RETURN_TO)]
    start = world.browser.http.get(f"{world.url}/login", params=pair if order == "evil-first" else pair[::-1])
    if start.status_code == 400:
        assert_refused_page(start, 400, BAD_LINK_PAGE)
        return
    assert start.status_code == 303
    hop = world.browser.choose_pupil(start.headers["location"], "lotte")
    answer = world.browser.follow(hop)
    assert answer.status_code == 303
    assert answer.headers["location"] == RETURN_TO


# --- oversized and malformed requests ---------------------------------------------------------------
@pytest.mark.parametrize("path", ["/introspect", "/callback", "/revoke", "/logout", "/token"])
async def test_two_megabyte_form(world: World, path: str) -> None:
    client_id, secret = world.internal_client
    body = {"token": "a" * TWO_MB, "code": "a" * TWO_MB, "state": "s"}
    answer = httpx.post(f"{world.url}{path}", data=body, auth=(client_id, secret), timeout=30)
    assert_clear_client_error(answer, path)
    assert 400 <= answer.status_code < 500 or path in ("/logout",)
    assert_security_headers(answer)
    await assert_nothing_stored_at_all(world)


@pytest.mark.parametrize("path", ["/introspect", "/callback", "/revoke"])
async def test_many_form_fields_and_odd_bodies(world: World, path: str) -> None:
    client_id, secret = world.internal_client
    bodies: list[tuple[bytes, str]] = [
        (b"&".join(b"token=x" for _ in range(20_000)), "application/x-www-form-urlencoded"),
        (b"token", "application/x-www-form-urlencoded"),
        (b"=&=&&==", "application/x-www-form-urlencoded"),
        (b'{"token": "x"}', "application/json"),
        (b"<token>x</token>", "application/xml"),
        (b"--b\r\nContent-Disposition: form-data; name=token\r\n\r\nx", "multipart/form-data; boundary=b"),
        (b"--b\r\nnot multipart at all", "multipart/form-data"),
        (b"token=x", "application/x-www-form-urlencoded; charset=ebcdic"),
        (secrets.token_bytes(4096), "application/octet-stream"),
    ]
    for body, content_type in bodies:
        answer = httpx.post(
            f"{world.url}{path}",
            content=body,
            headers={"content-type": content_type},
            auth=(client_id, secret),
        )
        assert_clear_client_error(answer, path)
        assert_security_headers(answer)
    await assert_nothing_stored_at_all(world)


@pytest.mark.parametrize(
    ("param", "size"), [("code", 2049), ("code", 60_000), ("state", 513), ("iss", 513), ("error", 5000)]
)
async def test_oversized_callback_query(world: World, param: str, size: int) -> None:
    answer = world.browser.http.get(f"{world.url}/callback", params={"state": "s", param: "a" * size})
    assert_refused_page(answer, 400, BAD_LINK_PAGE)
    assert_no_store(answer)


async def test_huge_cookie_header_and_many_cookies(world: World) -> None:
    hundred = "; ".join(f"c{i}={secrets.token_urlsafe(16)}" for i in range(100))
    huge = "leerid_session=" + "A" * 60_000
    failures = []
    for cookie in (hundred, huge, hundred + "; " + huge):
        for method, path in _routes(world.settings):
            answer = httpx.request(method, f"{world.url}{path}", headers={"cookie": cookie})
            if answer.status_code >= 500 or "Traceback" in answer.text:
                failures.append(f"{method} {path}: {answer.status_code}")
            elif path in ("/me", "/token"):
                assert answer.status_code == 401, answer.text
    assert not failures, failures


async def test_odd_headers(world: World) -> None:
    headers_list: list[dict[str, str]] = [
        {"x-request-id": "a" * 10_000},
        {"x-request-id": "../../etc/passwd"},
        {"authorization": "Basic " + "A" * 50_000},
        {"authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xc3\x28").decode()},
        {"authorization": "Bearer " + "x" * 20_000},
        {"authorization": "Basic"},
        {"authorization": "Basic ==="},
        {"origin": "https://" + EVIL},
        {"origin": "null"},
        {"content-type": "application/x-www-form-urlencoded; boundary=" + "x" * 10_000},
        {"host": EVIL},
        {"x-forwarded-for": "1.2.3.4, " * 500},
        {"accept": "text/html;q=" + "9" * 1000},
    ]
    failures = []
    for headers in headers_list:
        for method, path in _routes(world.settings):
            answer = httpx.request(method, f"{world.url}{path}", headers=headers)
            if answer.status_code >= 500 or "Traceback" in answer.text or 'File "' in answer.text:
                failures.append(f"{method} {path} {list(headers)}: {answer.status_code} {answer.text[:120]}")
            rid = answer.headers.get("x-request-id", "")
            if not (0 < len(rid) <= 64) or "/" in rid:
                failures.append(f"{method} {path}: request id echoed as {rid[:80]!r}")
    assert not failures, "\n".join(failures)


# --- forged session cookies ---------------------------------------------------------------------------
def _flip(value: str, index: int) -> str:
    replacement = "A" if value[index] != "A" else "B"
    return value[:index] + replacement + value[index + 1 :]


def _forgeries(real: str) -> Iterator[tuple[str, str]]:
    yield "random", secrets.token_urlsafe(32)
    yield "truncated", real[: len(real) // 2]
    yield "one-short", real[:-1]
    yield "one-longer", real + "A"
    yield "first-char-flipped", _flip(real, 0)
    yield "middle-char-flipped", _flip(real, len(real) // 2)
    yield "last-char-flipped", _flip(real, len(real) - 1)
    yield "upper-cased", real.upper()
    yield "empty", ""
    yield "4kB", "A" * 4096
    yield "sql", "' OR '1'='1"
    yield "percent", "%00%ff%c3%28"


async def test_forged_session_cookies_are_refused(world: World) -> None:
    assert world.login("lotte").status_code == 303
    lotte = session_cookie_of(world)
    world.browser.http.cookies.clear()
    assert world.login("noah").status_code == 303
    noah = session_cookie_of(world)
    assert lotte != noah

    failures = []
    for name, forged in _forgeries(noah):
        jar = {"leerid_session": forged}
        me = httpx.get(f"{world.url}/me", cookies=jar)
        token = httpx.post(f"{world.url}/token", cookies=jar)
        for answer in (me, token):
            if answer.status_code != 401 or answer.headers.get("content-type") != "application/problem+json":
                failures.append(f"{name} {answer.request.url.path}: {answer.status_code} {answer.text[:100]}")
            assert_no_stack_trace(answer)
            assert_no_store(answer)
        logout = httpx.post(f"{world.url}/logout", cookies=jar)
        if logout.status_code != 204:
            failures.append(f"{name} /logout: {logout.status_code}")
    assert not failures, "\n".join(failures)

    # Neither forgery ended or revealed a real session.
    for cookie in (lotte, noah):
        me = httpx.get(f"{world.url}/me", cookies={"leerid_session": cookie})
        assert me.status_code == 200
    assert await world.count(BrowserSession) == 2


async def test_raw_bytes_in_the_cookie_header(world: World) -> None:
    for raw in (b"leerid_session=\xff\xfe\xfd", b"leerid_session=\xc3\x28", b"\xff=\xff", b";;;=;=="):
        for path in ("/me", "/token", "/callback", "/logout"):
            method = "GET" if path in ("/me", "/callback") else "POST"
            answer = httpx.request(method, f"{world.url}{path}", headers=[(b"cookie", raw)])
            assert_clear_client_error(answer, path)


def session_cookie_of(world: World) -> str:
    value = world.browser.http.cookies.get("leerid_session")
    assert value
    return value


# --- invalid UTF-8 on every endpoint ------------------------------------------------------------------
INVALID_UTF8_QUERY = (
    "return_to=%C3%28&code=%FF&state=%C3%28&iss=%FF&error=%ED%A0%80&token=%FF&after=%C3%28"
    "&limit=%FF&purpose=%FF%FE%FD%FC%FB%FA%F9%F8%F7%F6&end_provider_session=%FF"
)
INVALID_UTF8_FORM = b"token=%C3%28&client_id=%FF&client_secret=%C3%28&code=%FF&state=%C3%28&iss=%ED%A0%80"
RAW_BYTES_FORM = b"token=\xff\xfe&client_id=\xc3\x28&code=\xff&state=\xc3\x28"


async def test_invalid_utf8_on_every_endpoint(world: World) -> None:
    client_id, secret = world.internal_client
    failures = []
    for method, path in _routes(world.settings):
        attempts: list[dict[str, Any]] = [{}]
        if method == "POST":
            form = {"content-type": "application/x-www-form-urlencoded"}
            attempts += [
                {"content": INVALID_UTF8_FORM, "headers": form},
                {"content": RAW_BYTES_FORM, "headers": form},
                {"content": INVALID_UTF8_FORM, "headers": form, "auth": (client_id, secret)},
                {"content": b'{"sub": "\xff\xfe"}', "headers": {"content-type": "application/json"}},
            ]
        for extra in attempts:
            answer = httpx.request(method, f"{world.url}{path}?{INVALID_UTF8_QUERY}", **extra)
            try:
                assert_clear_client_error(answer, path)
                assert_security_headers(answer)
            except AssertionError as exc:
                failures.append(f"{method} {path} {sorted(extra)}: {exc}")
    assert not failures, "\n".join(failures)
    await assert_nothing_stored_at_all(world)


def _raw_request(url: str, request: bytes) -> bytes:
    host, port = httpx.URL(url).host, httpx.URL(url).port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "target",
    [
        b"/login?return_to=\xff\xfe",
        b"/callback?state=\xc3\x28&code=\xff",
        b"/me?\xff",
        b"/\xff\xfe",
        b"/login?return_to=https://eteacher.example/app/\xc3\x28",
    ],
)
async def test_raw_invalid_utf8_request_line(world: World, target: bytes) -> None:
    """Bytes that are not even percent-encoded: the server or the app refuses, it never crashes."""
    answer = _raw_request(
        world.url, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    status_line = answer.split(b"\r\n", 1)[0]
    status = int(status_line.split(b" ")[1])
    assert 400 <= status < 500, status_line
    assert b"Traceback" not in answer
    assert b'File "' not in answer


# --- security headers --------------------------------------------------------------------------------
async def test_security_headers_on_every_response(world: World) -> None:
    client_id, secret = world.internal_client
    assert world.login("lotte").status_code == 303
    jar = world.browser.http
    answers = [
        jar.get(f"{world.url}/login", params={"return_to": RETURN_TO}),
        jar.get(f"{world.url}/login", params={"return_to": f"https://{EVIL}/"}),
        jar.get(f"{world.url}/callback", params={"state": "forged", "code": "x"}),
        jar.post(f"{world.url}/callback", data={"state": "forged", "code": "x"}),
        jar.post(f"{world.url}/token"),
        jar.get(f"{world.url}/me"),
        httpx.post(f"{world.url}/token"),
        httpx.get(f"{world.url}/me"),
        httpx.post(f"{world.url}/introspect", data={"token": "x"}, auth=(client_id, secret)),
        httpx.post(f"{world.url}/introspect", data={}, auth=(client_id, secret)),
        httpx.post(f"{world.url}/introspect", data={"token": "x"}),
        httpx.post(f"{world.url}/revoke", data={"token": "x"}, auth=(client_id, secret)),
        httpx.get(f"{world.url}/events", auth=(client_id, secret)),
        httpx.get(f"{world.url}/events"),
        httpx.get(f"{world.url}/.well-known/jwks.json"),
        httpx.get(f"{world.url}/.well-known/oauth-authorization-server"),
        httpx.get(f"{world.url}/healthz"),
        httpx.get(f"{world.url}/readyz"),
        httpx.get(f"{world.url}/openapi.json"),
        httpx.get(f"{world.url}/no-such-page"),
        httpx.request("PATCH", f"{world.url}/token"),
        httpx.get(f"{world.url}/admin/privacy-log"),
        jar.post(f"{world.url}/logout"),
    ]
    for answer in answers:
        assert answer.status_code < 500, answer.text[:300]
        assert_security_headers(answer)
        assert "strict-transport-security" not in answer.headers  # http public URL: no HSTS
    assert {a.status_code for a in answers} >= {200, 204, 303, 400, 401, 404, 405}


async def test_docs_page_forbids_framing_too(world: World) -> None:
    answer = httpx.get(f"{world.url}/docs")
    assert answer.status_code == 200
    assert_security_headers(answer)


async def test_no_store_on_token_introspect_me_and_callback(world: World) -> None:
    client_id, secret = world.internal_client
    hop_start = world.browser.start_login(world.url, RETURN_TO)
    assert_no_store(hop_start)
    hop = world.browser.choose_pupil(hop_start.headers["location"], "lotte")
    callback = world.browser.follow(hop)
    assert callback.status_code == 303
    token = world.browser.token(world.url)
    assert token.status_code == 200
    access_token = token.json()["access_token"]
    answers = [
        callback,
        token,
        world.browser.http.get(f"{world.url}/me"),
        world.browser.follow(hop),  # the replay: a page
        world.browser.http.post(f"{world.url}/callback", data={"state": "x"}),
        world.browser.http.get(f"{world.url}/callback"),
        httpx.post(f"{world.url}/token"),
        httpx.get(f"{world.url}/me"),
        httpx.post(f"{world.url}/introspect", data={"token": access_token}, auth=(client_id, secret)),
        httpx.post(f"{world.url}/introspect", data={"token": "x"}, auth=(client_id, "wrong")),
        httpx.post(f"{world.url}/introspect", data={}, auth=(client_id, secret)),
        httpx.post(f"{world.url}/introspect", content=b"\xff", auth=(client_id, secret)),
    ]
    assert {a.status_code for a in answers} >= {200, 303, 400, 401}
    for answer in answers:
        assert_no_store(answer)
        assert_security_headers(answer)


async def test_hsts_when_the_public_url_is_https(world: World) -> None:
    """HSTS (RFC 6797) only makes sense over https: the app built for an https public URL, in process."""
    values = world.settings.model_dump()
    values["public_url"] = "https://gateway.example"
    settings = Settings(**values)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="https://gateway.example") as client:
            answers = [
                await client.get("/login", params={"return_to": RETURN_TO}),
                await client.get("/login", params={"return_to": f"https://{EVIL}/"}),
                await client.get("/callback", params={"state": "forged"}),
                await client.post("/token"),
                await client.get("/me"),
                await client.post("/introspect", data={"token": "x"}),
                await client.get("/healthz"),
                await client.get("/.well-known/jwks.json"),
                await client.get("/no-such-page"),
            ]
    for answer in answers:
        hsts = answer.headers.get("strict-transport-security", "")
        assert hsts.startswith("max-age=") and int(hsts.split("=")[1].split(";")[0]) >= 31_536_000, answer
        assert_security_headers(answer)
    login_cookie = answers[0].headers["set-cookie"]
    assert login_cookie.startswith("__Host-leerid_login=")
    assert "secure" in login_cookie.lower()
    assert "httponly" in login_cookie.lower()


async def test_refusals_store_nothing(world: World) -> None:
    """After all of the above kinds of abuse in one world, nothing was written."""
    answer = world.browser.http.get(f"{world.url}/callback", params={"state": "x", "code": "y"})
    assert_refused_page(answer, 400, EXPIRED_PAGE)
    await assert_nothing_stored_at_all(world)


# --- OAuth endpoints keep the OAuth error form (RFC 7662 §2.3, RFC 7009 §2.2.1 -> RFC 6749 §5.2) ----------
OAUTH_MALFORMED = [
    pytest.param({"data": {}}, id="no-token"),
    pytest.param({"data": {"token": "a" * 9000}}, id="token-too-long"),
    pytest.param({"data": {"token": "a" * TWO_MB}}, id="two-megabytes"),
    pytest.param({"content": b"&".join(b"token=x" for _ in range(2000))}, id="too-many-fields"),
    pytest.param({"json": {"token": "x"}}, id="json-body"),
]


@pytest.mark.parametrize("path", ["/introspect", "/revoke"])
@pytest.mark.parametrize("request_args", OAUTH_MALFORMED)
async def test_oauth_endpoints_answer_malformed_requests_in_oauth_form(
    world: World, path: str, request_args: dict[str, Any]
) -> None:
    client_id, secret = world.internal_client
    headers = {"content-type": "application/x-www-form-urlencoded"} if "content" in request_args else {}
    answer = httpx.post(
        f"{world.url}{path}", auth=(client_id, secret), headers=headers, timeout=30, **request_args
    )
    assert answer.status_code == 400, answer.text[:300]
    assert answer.headers["content-type"].startswith("application/json"), answer.headers["content-type"]
    assert answer.json()["error"] == "invalid_request"
    assert_no_store(answer)


async def test_method_not_allowed_names_the_allowed_methods(world: World) -> None:
    """RFC 9110 §15.5.6: a 405 carries Allow (schemathesis found it missing behind the error handler)."""
    for method, path, allowed in [
        ("PATCH", "/token", "POST"),
        ("DELETE", "/me", "GET"),
        ("GET", "/introspect", "POST"),
        ("PUT", "/login", "GET"),
        ("PUT", "/callback", "GET"),
        ("PUT", "/callback", "POST"),  # two routes share the path: Allow must name both
    ]:
        answer = httpx.request(method, f"{world.url}{path}")
        assert answer.status_code == 405
        assert allowed in answer.headers.get("allow", ""), (method, path, answer.headers.get("allow"))
        assert_clear_client_error(answer, "/api")
        assert_security_headers(answer)
