"""The HTTP/1.1 transport under the gateway's httpx client to ACM and the datastore.

httpx stays the client API (requests, responses, timeouts, respx in unit tests, OpenTelemetry's
instrumentation); this replaces only what sits below it, httpcore + h11 + anyio, which cost
~0.3 ms of CPU more per call (bench/transport_bench.py; two calls per login). It is asyncio's own
transport and protocol with httptools (llhttp, the parser uvicorn already runs for our inbound
requests) reading the responses, and a small pool of keep-alive connections per origin. Nothing
else: no HTTP/2, no proxies (behind an egress proxy the gateway keeps httpx's own transports:
``oidc/upstream.py``), no streaming (the answers are small JSON documents, read whole and bounded
by ``max_response_bytes``; a request body must be bytes).

RFC 9112 (HTTP/1.1 messaging) where a client has a choice:
- §9.3 persistence: a connection is reused only after a complete answer that allows it
  (``Connection: close``, HTTP/1.0 without keep-alive end it), never pipelined, and only while it
  is open with nothing unread (the check httpcore makes); any second message, or bytes nobody
  asked for, close it, so an answer can never reach a request it was not sent for;
- §6.3 message length: Content-Length, chunked, or close-delimited (up to a clean close; a reset
  is an error); trailer fields are not merged into the header fields;
- RFC 9110 §15.2 interim 1xx answers are skipped; 101 (upgrade) is refused;
- §3, §5 / RFC 9110 §5.5, §5.6.2: the method and field names are tokens, field values have no
  control characters, so a value from upstream (an access token in ``Authorization``) can never
  split the request.
"""

from __future__ import annotations

import asyncio
import re
import select
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import httptools
import httpx

CHUNK = 16 * 1024  # the body is handed to httpx's decoders in pieces (bounded gzip expansion)
# RFC 9110 §5.6.2 token (methods, field names); §5.5 field values: no controls but HTAB.
_NOT_TOKEN = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_NOT_FIELD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_NOT_TARGET = re.compile(rb"[\x00-\x20\x7f]")


class ResponseTooLarge(httpx.ReadError):
    """The response exceeded ``max_response_bytes``; the connection was closed."""


class _Body(httpx.AsyncByteStream):
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._body), CHUNK):
            yield self._body[start : start + CHUNK]


@dataclass(slots=True)
class _Response:
    """One response message as httptools reads it (a fresh one per message: never reused)."""

    status: int = 0
    reason: bytes = b""
    version: bytes = b"HTTP/1.1"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    headers_done: bool = False

    def close_delimited(self) -> bool:
        """RFC 9112 §6.3: no Content-Length and no chunked coding: the body ends with the connection."""
        length = chunked = False
        for name, value in self.headers:
            lowered = name.lower()
            length = length or lowered == b"content-length"
            chunked = chunked or (
                lowered == b"transfer-encoding" and value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
            )
        return not length and not chunked


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the one response it is reading; httptools calls the on_*
    methods. The answer to a request is handed over only once it is complete, and a connection
    that shows anything unexpected (bytes nobody asked for, a second message) is closed."""

    def __init__(self, origin: tuple[bytes, bytes, int], max_bytes: int) -> None:
        self.origin = origin
        self.closed = False
        self.idle_since = 0.0
        self.keep_alive = False
        self.answer: _Response | None = None
        self._max_bytes = max_bytes
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._reading = _Response()
        self._done: asyncio.Future[None] | None = None
        self._timeout: asyncio.Timeout | None = None
        self._read_timeout: float | None = None
        self._writable: asyncio.Future[None] | None = None
        self._received = 0

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
        timeout = self._timeout
        if timeout is not None and self._read_timeout is not None and not timeout.expired():
            timeout.reschedule(asyncio.get_running_loop().time() + self._read_timeout)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response ({exc})"))
        if self.answer is not None and not self.keep_alive:
            self.close()  # done with this connection (and whatever else the server sent on it)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if self._done is None or self._done.done():
            return
        reading = self._reading
        if exc is None and reading.headers_done and reading.status >= 200 and reading.close_delimited():
            self._finish(reading)  # RFC 9112 §6.3 (8): the body ends where the connection does
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
        if self.answer is not None:
            # A second message after the answer: nothing asked for it, so it is nobody's answer
            # (RFC 9112 §9.3: no pipelining here). The answer stands; the connection goes.
            self.keep_alive = False
        self._reading = _Response()

    def on_status(self, reason: bytes) -> None:
        self._reading.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._reading.headers_done:  # trailer fields (RFC 9110 §6.5) are not header fields
            self._reading.headers.append((name, value))

    def on_headers_complete(self) -> None:
        reading = self._reading
        reading.status = self._parser.get_status_code()
        reading.version = b"HTTP/" + self._parser.get_http_version().encode("ascii")
        reading.headers_done = True

    def on_body(self, body: bytes) -> None:
        self._reading.body += body

    def on_message_complete(self) -> None:
        if self.answer is not None:
            return
        if 100 <= self._reading.status < 200:
            self._reading = _Response()  # RFC 9110 §15.2: interim; the final answer follows
            return
        self.keep_alive = self._parser.should_keep_alive()
        self._finish(self._reading)

    def _finish(self, response: _Response) -> None:
        self.answer = response
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    # --- the exchange ------------------------------------------------------------------------
    def usable(self) -> bool:
        """Still open, with nothing waiting to be read. The event loop reports a close as soon as it
        processes it; a FIN (or stray bytes) that arrived but was not processed yet shows as a
        readable socket (the check httpcore makes before reusing a connection)."""
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            return False
        sock = transport.get_extra_info("socket")
        if sock is None:
            return False
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
        return not readable

    async def exchange(self, head: bytes, body: bytes, timeouts: dict[str, float | None]) -> _Response:
        """Send one request and read its whole answer."""
        loop = asyncio.get_running_loop()
        done = self._done = loop.create_future()
        self.answer = None
        self.keep_alive = False
        self._reading = _Response()
        self._received = 0
        assert self._transport is not None
        self._transport.write(head + body if len(body) < CHUNK else head)
        if len(body) >= CHUNK:
            self._transport.write(body)
        if self._writable is not None:  # flow control: wait until sent, or answered early
            try:
                async with asyncio.timeout(timeouts.get("write")):
                    await asyncio.wait((self._writable, done), return_when=asyncio.FIRST_COMPLETED)
            except TimeoutError:
                raise httpx.WriteTimeout("timed out sending the request") from None
        self._read_timeout = timeouts.get("read")
        try:
            async with asyncio.timeout(self._read_timeout) as self._timeout:
                await done
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for the response") from None
        finally:
            self._timeout = None
        assert self.answer is not None
        return self.answer

    def _fail(self, error: Exception) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        self.keep_alive = False
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
        return self.response(await self.answer(request), request)

    @staticmethod
    def response(answer: _Response, request: httpx.Request) -> httpx.Response:
        """The answer as httpx's response (which decodes a Content-Encoding when it is read)."""
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=_Body(bytes(answer.body)),
            extensions={"http_version": answer.version, "reason_phrase": answer.reason},
            request=request,
        )

    async def answer(self, request: httpx.Request) -> _Response:
        """Send ``request`` and return its complete answer as read off the wire: status, raw header
        fields and the body, still in its Content-Encoding. ``handle_async_request`` is this and
        ``response``; oidc/upstream.py takes the answer itself when no one wraps this transport."""
        if "transfer-encoding" in request.headers:
            raise httpx.UnsupportedProtocol("streaming request bodies are not supported", request=request)
        head = encode_head(request.method, request.url, request.headers.raw, request)
        body = await request.aread()
        return await self.send(request.url, head, body, request.extensions.get("timeout", {}), request)

    async def send(
        self,
        url: httpx.URL,
        head: bytes,
        body: bytes,
        timeouts: dict[str, float | None],
        request: httpx.Request | None = None,
    ) -> _Response:
        """Send a request already encoded (``encode_head`` and its body, framed by the head's
        Content-Length) to ``url``'s origin and return its complete answer. ``request``, when
        there is one, is named in the errors raised."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        origin = (url.raw_scheme, url.raw_host, url.port or (443 if url.scheme == "https" else 80))
        if self._slots.locked():  # only a wait for a free slot needs its timeout
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await self._slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no free connection", request=request) from None
        else:
            await self._slots.acquire()  # a free slot: taken at once, without yielding
        try:
            conn = self._checkout(origin) or await self._connect(origin, timeouts, request)
            try:
                answer = await conn.exchange(head, body, timeouts)
            except BaseException as exc:  # failed or cancelled mid-exchange: its state is unknown
                conn.close()
                if isinstance(exc, httpx.TransportError):
                    if request is not None:
                        exc.request = request
                elif isinstance(exc, OSError):  # a write on a connection that just broke
                    raise httpx.WriteError(f"the connection failed ({exc})", request=request) from None
                raise
            self._checkin(conn)
            return answer
        finally:
            self._slots.release()

    def _checkout(self, origin: tuple[bytes, bytes, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since < self._expiry and conn.usable():
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
        self,
        origin: tuple[bytes, bytes, int],
        timeouts: dict[str, float | None],
        request: httpx.Request | None,
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


def encode_head(
    method: str, url: httpx.URL, fields: list[tuple[bytes, bytes]], request: httpx.Request | None = None
) -> bytes:
    """Request line and header fields (RFC 9112 §3, §5), refusing anything that could split them,
    and what this transport does not do: schemes other than http(s), HEAD (an answer without the
    body its header fields announce) and CONNECT."""
    if url.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}", request=request)
    if method in ("HEAD", "CONNECT"):
        raise httpx.UnsupportedProtocol(f"{method} is not supported here", request=request)
    encoded, target = method.encode("utf-8"), url.raw_path
    names = b"".join(name for name, _ in fields)
    values = b"\t".join(value for _, value in fields)
    if (
        not encoded
        or _NOT_TOKEN.search(encoded)
        or _NOT_TARGET.search(target)
        or _NOT_TOKEN.search(names)
        or _NOT_FIELD_VALUE.search(values)
    ):
        raise httpx.LocalProtocolError("the method, target or a header field is not allowed", request=request)
    lines = [encoded + b" " + target + b" HTTP/1.1"]
    lines.extend(name + b": " + value for name, value in fields)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)
