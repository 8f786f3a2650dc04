"""The HTTP/1.1 transport under the gateway's httpx client to ACM and the datastore.

httpx stays the client API (requests, responses, timeouts, proxies from the environment, respx in
unit tests, OpenTelemetry's instrumentation); this replaces only what sits below it, httpcore + h11
+ anyio, which cost ~0.3 ms of CPU per call (bench/transport_bench.py; two calls per login). It is
asyncio's own transport and protocol with httptools (llhttp, the parser uvicorn already runs for
our inbound requests) reading the responses. It keeps a small pool of keep-alive connections per
origin and does nothing else: no HTTP/2, no proxies (httpx mounts its own proxy transports for
the environment's proxies, so those still work), no streaming of large bodies (the answers are
small JSON documents; ``max_response_bytes`` bounds them).

RFC 9112 (HTTP/1.1 messaging) is followed where a client has a choice:
- §9.3 persistence: a connection is reused only after a complete response that allows it
  (``Connection: close`` and HTTP/1.0 without keep-alive end it), never pipelined, and dropped as
  soon as the server closes it (the event loop reports that, no polling before reuse);
- §6.3 message length: Content-Length, chunked, or close-delimited (read until the server closes);
- §15.2 (RFC 9110) interim 1xx responses are skipped; 101 (upgrade) is refused;
- §4 / §5 no CR, LF or NUL in the request line or a header: a value from upstream (an access
  token in ``Authorization``) can never split the request.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from typing import cast

import httptools
import httpx

CHUNK = 16 * 1024  # the body is handed to httpx's decoders in pieces (bounded gzip expansion)
_FORBIDDEN = (b"\r", b"\n", b"\0")


class ResponseTooLarge(httpx.ReadError):
    """The response exceeded ``max_response_bytes``; the connection was closed."""


class _Body(httpx.AsyncByteStream):
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._body), CHUNK):
            yield self._body[start : start + CHUNK]


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the response it is reading; httptools calls the on_* methods."""

    def __init__(self, origin: tuple[bytes, bytes, int], max_bytes: int) -> None:
        self.origin = origin
        self.closed = False
        self.idle_since = 0.0
        self._max_bytes = max_bytes
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._done: asyncio.Future[None] | None = None
        self._timeout: asyncio.Timeout | None = None
        self._read_timeout: float | None = None
        self._writable: asyncio.Future[None] | None = None
        self._received = 0
        self._headers_done = False
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.keep_alive = False

    # --- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._done is None or self._done.done():
            self.close()  # bytes nobody asked for: the connection's state is unknown
            return
        self._received += len(data)
        if self._received > self._max_bytes:
            self._fail(ResponseTooLarge(f"response larger than {self._max_bytes} bytes"))
            return
        if self._timeout is not None and self._read_timeout is not None:
            self._timeout.reschedule(asyncio.get_running_loop().time() + self._read_timeout)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if self._done is None or self._done.done():
            return
        if self._headers_done and self._close_delimited():
            self._done.set_result(None)  # RFC 9112 §6.3 (8): the body ends where the connection does
        else:
            self._fail(httpx.RemoteProtocolError("server disconnected without a complete response"))

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # --- httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._headers_done = False
        self.reason = b""
        self.headers = []
        self.body.clear()

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            return  # RFC 9110 §15.2: an interim response; the final one follows on this connection
        self.keep_alive = self._parser.should_keep_alive()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    # --- the exchange ------------------------------------------------------------------------
    async def exchange(self, head: bytes, body: bytes, timeouts: dict[str, float | None]) -> None:
        """Send one request and read its whole response into status, reason, headers and body."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._received = 0
        self.keep_alive = False
        self.status = 0
        assert self._transport is not None
        try:
            self._transport.write(head + body if len(body) < CHUNK else head)
            if len(body) >= CHUNK:
                self._transport.write(body)
            if self._writable is not None:
                async with asyncio.timeout(timeouts.get("write")):
                    await self._writable
        except TimeoutError:
            raise httpx.WriteTimeout("timed out sending the request") from None
        if self.closed and not self._done.done():
            raise httpx.WriteError("the connection closed while sending the request")
        self._read_timeout = timeouts.get("read")
        try:
            async with asyncio.timeout(self._read_timeout) as self._timeout:
                await self._done
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for the response") from None
        finally:
            self._timeout = None

    def _close_delimited(self) -> bool:
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _fail(self, error: Exception) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class Http1Transport(httpx.AsyncBaseTransport):
    """httpx transport: HTTP/1.1 over asyncio with httptools, keep-alive connections per origin."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 50,
        max_idle_per_origin: int = 20,
        keepalive_expiry: float = 5.0,
        max_response_bytes: int = 1024 * 1024,
    ) -> None:
        self._ssl = ssl_context
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_idle_per_origin
        self._expiry = keepalive_expiry
        self._max_bytes = max_response_bytes
        self._idle: dict[tuple[bytes, bytes, int], list[_Connection]] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}", request=request)
        if request.method in ("HEAD", "CONNECT"):
            raise httpx.UnsupportedProtocol(f"{request.method} is not supported here", request=request)
        head = _request_head(request)
        body = await request.aread()
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        origin = (url.raw_scheme, url.raw_host, url.port or (443 if url.scheme == "https" else 80))
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection", request=request) from None
        try:
            conn = self._checkout(origin) or await self._connect(origin, timeouts, request)
            try:
                await conn.exchange(head, body, timeouts)
            except httpx.TransportError as exc:
                conn.close()
                exc.request = request
                raise
            except BaseException:  # cancelled mid-exchange: the connection's state is unknown
                conn.close()
                raise
            response = httpx.Response(
                conn.status,
                headers=conn.headers,
                stream=_Body(bytes(conn.body)),
                extensions={"http_version": b"HTTP/1.1", "reason_phrase": conn.reason},
                request=request,
            )
            self._checkin(conn)
            return response
        finally:
            self._slots.release()

    def _checkout(self, origin: tuple[bytes, bytes, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._expiry:
                return conn
            conn.close()
        return None

    def _checkin(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if conn.closed or not conn.keep_alive or self._closed or len(idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def _connect(
        self, origin: tuple[bytes, bytes, int], timeouts: dict[str, float | None], request: httpx.Request
    ) -> _Connection:
        scheme, raw_host, port = origin
        host = raw_host.decode("ascii")
        context: ssl.SSLContext | None = None
        if scheme == b"https":
            if self._ssl is None:  # made once, on first use: loading the CA bundle takes ~20 ms
                self._ssl = httpx.create_ssl_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                _, conn = await loop.create_connection(
                    lambda: _Connection(origin, self._max_bytes),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}", request=request) from None
        return conn

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def _request_head(request: httpx.Request) -> bytes:
    """Request line and header fields (RFC 9112 §3, §5), refusing anything that could split them."""
    raw = request.headers.raw
    target = request.url.raw_path
    fields = b"\x1f".join([target, *(name + b"\x1f" + value for name, value in raw)])
    if any(c in fields for c in _FORBIDDEN) or any(b":" in n or b" " in n or b"\t" in n for n, _ in raw):
        raise httpx.LocalProtocolError("a request line or header contains CR, LF or NUL", request=request)
    lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    lines.extend(name + b": " + value for name, value in raw)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)
