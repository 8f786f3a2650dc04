"""HTTP calls to ACM and the datastore: bounded time, bounded size, JSON only, typed failures.

One attempt, nothing more: retries and the circuit breaker live in oidc/resilience.py, which
knows which calls are safe to repeat (never the single-use code exchange, RFC 6749 §4.1.2).
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

from leerid_gateway.kit import metrics
from leerid_gateway.kit.errors import UpstreamError
from leerid_gateway.kit.logging import request_id_var
from leerid_gateway.oidc.transport import Http1Transport, ResponseTooLarge, encode_head

MAX_BODY = 512 * 1024  # far above any real discovery/JWKS/token/userinfo answer
MAX_HEAD = 64 * 1024  # status line and header fields on top of that


class _NoCookies(DefaultCookiePolicy):
    """One client serves every pupil's login: a cookie ACM or the datastore sets during one pupil's
    token exchange must never ride along on the next pupil's calls. Nothing is stored, nothing sent."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


def new_client(*, timeout: float, user_agent: str) -> httpx.AsyncClient:
    """The one HTTP client for ACM and the datastore (connection pooling, no redirects, no cookies:
    ``request_json`` sends past the client's cookie jar; the jar refuses everything all the same).

    Our ``Http1Transport`` (oidc/transport.py: a quarter of a login's CPU was httpcore's) serves
    direct connections. httpx honours the environment's proxies only when it makes its own
    transports, so behind an egress proxy (``HTTPS_PROXY`` and friends) the client is httpx's own,
    proxies, ``NO_PROXY`` and all, and slower.
    """
    proxied = any(scheme in urllib.request.getproxies() for scheme in ("http", "https", "all"))
    transport = None if proxied else Http1Transport(max_response_bytes=MAX_BODY + MAX_HEAD)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        transport=transport,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        follow_redirects=False,
        headers={"User-Agent": user_agent},
        cookies=CookieJar(policy=_NoCookies()),
    )


@metrics.timed_upstream  # latency histogram per endpoint (kind) and outcome
async def request_json(
    client: httpx.AsyncClient,
    kind: str,
    method: str,
    url: str,
    *,
    ok: tuple[int, ...] = (200,),
    deadline: float = 10.0,
    **kwargs: Any,
) -> tuple[int, dict[str, Any]]:
    """Send one request and return (status, JSON object). Raises ``UpstreamError(kind…)``.

    Statuses outside ``ok`` still return when the body is a JSON object and the status is 4xx, so the
    caller can read an OAuth error (RFC 6749 §5.2); anything else is an UpstreamError.
    ``deadline`` bounds the whole exchange: httpx's timeout is per read, so a server dripping one
    byte at a time would otherwise hold the request open indefinitely.
    """
    if (request_id := request_id_var.get()) is not None:  # ties ACM's logs to ours
        kwargs["headers"] = {**(kwargs.get("headers") or {}), "X-Request-ID": request_id}
    try:
        async with asyncio.timeout(deadline):
            status, headers, body = await _exchange(client, method, _parsed(url), kwargs)
        if len(body) > MAX_BODY:
            raise UpstreamError(kind, f"response larger than {MAX_BODY} bytes")
    except ResponseTooLarge:
        raise UpstreamError(kind, f"response larger than {MAX_BODY} bytes") from None
    except (httpx.TimeoutException, TimeoutError):
        raise UpstreamError(kind, "timeout") from None
    except httpx.HTTPError as exc:
        raise UpstreamError(kind, f"transport error ({type(exc).__name__})") from None
    if status == 429 or status >= 500:
        raise UpstreamError(kind, f"HTTP {status}", status=status, retry_after=_retry_after(headers))
    if status not in ok and status < 400:
        raise UpstreamError(kind, f"HTTP {status}", status=status)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UpstreamError(kind, f"HTTP {status} with a body that is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamError(kind, f"HTTP {status} with JSON that is not an object")
    return status, data


_URLS: dict[str, httpx.URL] = {}


def _parsed(url: str) -> httpx.URL:
    """The endpoint's URL, parsed once: a handful of fixed endpoints (discovery, JWKS, token, userinfo,
    the datastore), and parsing one costs more than the rest of building the request."""
    parsed = _URLS.get(url)
    if parsed is None:
        if len(_URLS) >= 64:  # the provider's metadata changed many times: start over
            _URLS.clear()
        parsed = _URLS[url] = httpx.URL(url)
    return parsed


async def _exchange(
    client: httpx.AsyncClient, method: str, url: httpx.URL, kwargs: dict[str, Any]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request straight to the transport httpx would pick for it (its own proxy transport when
    the environment names a proxy, else ours): what ``AsyncClient.send`` does without its cookie
    jar, auth flow and redirect loop, none of which a call to ACM may use, and which cost half as
    much CPU again as the transport itself. ``_transport_for_url`` is also the hook respx mocks.

    To our own transport, unless something wraps it (OpenTelemetry's instrumentation sets its own
    ``handle_async_request`` on the instance: that one then runs, and every call gets its span), the
    request goes encoded as httpx would encode it (``_as_httpx_would``), and the answer comes back
    as it came off the wire (status, header fields, body), without an httpx request or response
    around either; a body with a Content-Encoding still goes through httpx's decoders. Returns
    (status, raw header fields, body); a body past ``MAX_BODY`` is cut short there + a chunk.
    """
    transport = client._transport_for_url(url)
    ours = type(transport) is Http1Transport and "handle_async_request" not in vars(transport)
    encoded = _as_httpx_would(client, method, url, kwargs) if ours else None
    if encoded is not None:
        assert isinstance(transport, Http1Transport)
        head, content = encoded
        answer = await transport.send(url, head, content, client.timeout.as_dict())
        if not any(name.lower() == b"content-encoding" for name, _ in answer.headers):
            return answer.status, answer.headers, bytes(answer.body)
        response = transport.response(answer, httpx.Request(method, url))
    else:
        response = await transport.handle_async_request(client.build_request(method, url, **kwargs))
    try:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BODY:
                break  # the caller refuses it
    finally:
        await response.aclose()
    return response.status_code, response.headers.raw, bytes(body)


_FORM = b"application/x-www-form-urlencoded"
_FRAMING = frozenset({b"host", b"content-length", b"content-type", b"transfer-encoding"})


def _as_httpx_would(
    client: httpx.AsyncClient, method: str, url: httpx.URL, kwargs: dict[str, Any]
) -> tuple[bytes, bytes] | None:
    """The request head and body that ``client.build_request(method, url, **kwargs)`` and our
    transport would send, for the calls the login makes (a GET, or a POST of a form of strings,
    with header fields given as strings): in a tenth of the CPU of an httpx request. The same
    fields in the same order: Host, the client's own fields but those the call sets, the call's
    fields, then the form's Content-Length and Content-Type (tests/oidc/test_upstream.py compares
    the two byte for byte). Anything else (other arguments, a client with cookies, parameters or
    auth of its own) is None: httpx builds it."""
    headers: dict[str, str] = kwargs.get("headers") or {}
    form: dict[str, str] | None = kwargs.get("data")
    if (
        len(kwargs) > ("headers" in kwargs) + ("data" in kwargs)
        # a GET without a form, or a POST with one (an empty form is no body at all to httpx)
        or not ((method == "GET" and form is None) or (method == "POST" and form))
        or client.cookies
        or client.params
        or client.auth is not None
        or str(client.base_url)
    ):
        return None
    given = [(name.encode("ascii"), value.encode("ascii")) for name, value in headers.items()]
    overridden = {name.lower() for name, _ in given}
    if len(overridden) < len(given) or not overridden.isdisjoint(_FRAMING):
        return None  # one field twice in two spellings, or one httpx makes itself: httpx decides
    own = client.headers.raw
    if any(name.lower() in _FRAMING for name, _ in own):
        return None  # the client sets a field httpx frames itself: httpx decides
    fields = [(b"Host", url.netloc)]
    fields.extend(field for field in own if field[0].lower() not in overridden)
    fields.extend(given)
    body = b""
    if form:
        if not all(isinstance(name, str) and isinstance(value, str) for name, value in form.items()):
            return None
        body = _urlencoded(form).encode("utf-8")
        fields.append((b"Content-Length", str(len(body)).encode("ascii")))
        fields.append((b"Content-Type", _FORM))
    return encode_head(method, url, fields), body


_NOTHING_TO_QUOTE = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote_plus leaves as it is
_TO_QUOTE = re.compile(rb"[^A-Za-z0-9_.~ -]")  # what it percent-encodes (a space becomes "+")


def _urlencoded(form: dict[str, str]) -> str:
    """``urlencode(form)`` (httpx's form encoding): each name and value through ``quote_plus``.
    tests/oidc/test_upstream.py compares it with the standard library's."""
    return "&".join(_quote_plus(name) + "=" + _quote_plus(value) for name, value in form.items())


def _quote_plus(text: str) -> str:
    """``urllib.parse.quote_plus(text)``: UTF-8 (strict), every byte outside ``[A-Za-z0-9_.~-]`` as
    ``%XX`` in upper case, and a space as ``+``. As it is when there is nothing to quote (the code
    verifier, often the code), and otherwise with a regular expression rather than ``quote``'s
    Python call per byte (the redirect_uri)."""
    if _NOTHING_TO_QUOTE.fullmatch(text):
        return text
    return _TO_QUOTE.sub(_percent, text.encode("utf-8")).decode("ascii").replace(" ", "+")


def _percent(match: re.Match[bytes]) -> bytes:
    return b"%%%02X" % match[0][0]


def _retry_after(headers: list[tuple[bytes, bytes]]) -> float | None:
    """RFC 9110 §10.2.3 Retry-After in seconds (the HTTP-date form is treated as unknown)."""
    found = [v for name, v in headers if name.lower() == b"retry-after"]
    value = found[-1].decode("latin-1") if found else None
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None
