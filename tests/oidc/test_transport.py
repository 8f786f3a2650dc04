"""Http1Transport against real servers on loopback: each test scripts what the server sends, byte
for byte, and checks what httpx hands back (RFC 9112 framing, persistence, failures, TLS)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from leerid_gateway.oidc.transport import Http1Transport, ResponseTooLarge

Handler = Callable[["Server", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'


class Server:
    """A loopback server that runs ``handler`` for every connection and counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + (await reader.readexactly(length) if length else b"")
        self.requests.append(request)
        return request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(handler)
    listening = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listening.close()
        for task in server.tasks:
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)
        await listening.wait_closed()


@asynccontextmanager
async def client(timeout: httpx.Timeout | float = 2.0, **options: object) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=Http1Transport(**options), timeout=timeout) as http:  # type: ignore[arg-type]
        yield http


def keep_alive(*answers: bytes) -> Handler:
    """Answer each request on the connection with the next answer, then wait for more."""

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await server.read_request(reader)
            writer.write(answer)
            await writer.drain()
        await reader.read()  # until the client closes

    return handler


def scripted(*answers: bytes) -> AbstractAsyncContextManager[Server]:
    return serving(keep_alive(*answers))


def hang_up_after(*parts: bytes, pause: float = 0.0) -> Handler:
    """Read one request, send ``parts`` (``pause`` seconds apart), then close the connection."""

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        for i, part in enumerate(parts):
            if i:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()

    return handler


async def test_a_json_answer_and_the_request_as_sent() -> None:
    async with scripted(OK) as server, client() as http:
        answer = await http.post(
            f"{server.url}/op/token?x=1", data={"grant_type": "authorization_code", "code": "a b"}
        )
    assert (answer.status_code, answer.json(), answer.reason_phrase) == (200, {"ok": True}, "OK")
    assert answer.headers["content-type"] == "application/json"
    request = server.requests[0]
    assert request.startswith(b"POST /op/token?x=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}\r\n".encode() in request.lower()
    assert request.endswith(b"\r\n\r\ngrant_type=authorization_code&code=a+b")
    assert b"content-length: 38\r\n" in request.lower()


async def test_keep_alive_reuses_one_connection() -> None:
    async with scripted(OK, OK, OK) as server, client() as http:
        for _ in range(3):
            assert (await http.get(server.url)).json() == {"ok": True}
    assert server.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",  # 1.0 without keep-alive
    ],
)
async def test_an_answer_that_ends_its_connection_is_honoured(answer: bytes) -> None:
    async with scripted(answer) as server, client() as http:
        for _ in range(3):
            assert (await http.get(server.url)).json() == {}
    assert server.connections == 3


async def test_a_server_that_closes_an_idle_connection_costs_no_failed_request() -> None:
    # The server closes the kept-alive connection while the client is idle.
    async with serving(hang_up_after(OK)) as server, client() as http:
        assert (await http.get(server.url)).status_code == 200
        await asyncio.sleep(0.05)  # the FIN arrives; the event loop tells the connection
        assert (await http.get(server.url)).status_code == 200
    assert server.connections == 2


async def test_chunked_body_fed_one_byte_at_a_time() -> None:
    body = b'{"given_name": "Lotte", "family_name": "Peeters"}'
    chunked = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in (body[:10], body[10:])) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Long: " + b"v" * 3000 + b"\r\n\r\n"
    answer = head + chunked

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            await server.read_request(reader)
            for i in range(len(answer)):
                writer.write(answer[i : i + 1])
                await writer.drain()
        await reader.read()

    async with serving(handler) as server, client() as http:
        for _ in range(2):
            got = await http.get(server.url)
            assert got.content == body
            assert got.headers["x-long"] == "v" * 3000
    assert server.connections == 1


async def test_close_delimited_body_ends_with_the_connection() -> None:
    head = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"a": '
    async with serving(hang_up_after(head, b"1}", pause=0.02)) as server, client() as http:
        assert (await http.get(server.url)).json() == {"a": 1}


async def test_interim_1xx_responses_are_skipped() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
    async with scripted(interim + OK) as server, client() as http:
        answer = await http.get(server.url)
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    assert "link" not in answer.headers


async def test_gzip_is_decoded_by_httpx() -> None:
    import gzip

    packed = gzip.compress(b'{"ok": "gzip"}')
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)
    answer = head + packed
    async with scripted(answer) as server, client() as http:
        assert (await http.get(server.url)).json() == {"ok": "gzip"}


@pytest.mark.parametrize(
    "garbage",
    [
        b"HTTP/1.1 2OO OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    ],
)
async def test_a_malformed_answer_is_a_protocol_error_and_the_connection_goes(garbage: bytes) -> None:
    async with scripted(garbage, OK) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(server.url)
    assert server.connections == 1


async def test_a_server_that_hangs_up_mid_answer() -> None:
    truncated = b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"trunc'
    async with serving(hang_up_after(truncated)) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError, match="disconnected"):
            await http.get(server.url)


async def test_a_server_that_never_answers_is_a_read_timeout_and_the_connection_goes() -> None:
    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        await reader.read()

    async with serving(handler) as server, client(httpx.Timeout(2.0, read=0.2)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(server.url)
        transport = http._transport
        assert isinstance(transport, Http1Transport)
        assert not any(transport._idle.values())


async def test_the_read_timeout_is_per_read_not_per_answer() -> None:
    """httpx's read timeout bounds each wait for data (the caller's deadline bounds the whole)."""
    body = b'{"slow": true}'

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        for byte in body:
            await asyncio.sleep(0.05)
            writer.write(bytes([byte]))

    async with serving(handler) as server, client(httpx.Timeout(2.0, read=0.3)) as http:
        assert (await http.get(server.url)).json() == {"slow": True}


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with serving(keep_alive()) as server:
        port = server.port
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")


async def test_an_answer_over_the_limit_is_refused_and_not_read_further() -> None:
    huge = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 200_000
    async with scripted(huge) as server, client(max_response_bytes=100_000) as http:
        with pytest.raises(ResponseTooLarge):
            await http.get(server.url)


async def test_crlf_in_a_header_from_upstream_never_reaches_the_wire() -> None:
    async with scripted(OK) as server, client() as http:
        for bad in ("at\r\nX-Injected: 1", "at\nX: 1", "at\x00"):
            with pytest.raises((httpx.LocalProtocolError, httpx.InvalidURL)):
                await http.get(server.url, headers={"Authorization": f"Bearer {bad}"})
        assert (await http.get(server.url)).status_code == 200
    assert server.requests == [server.requests[0]] and b"X-Injected" not in server.requests[0]


async def test_a_cancelled_request_does_not_leave_its_connection_in_the_pool() -> None:
    gate = asyncio.Event()

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        await gate.wait()
        writer.write(OK)  # the answer to the cancelled request must not reach the next one
        await writer.drain()
        await server.read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"other"')
        await reader.read()

    async with serving(handler) as server, client() as http:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await http.get(server.url)
        gate.set()
        assert (await http.get(server.url)).json() == {"ok": True}  # a fresh connection's first answer
    assert server.connections == 2


async def test_the_pool_bounds_connections_and_waits_for_a_free_one() -> None:
    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(OK)
            await writer.drain()

    async with serving(handler) as server, client(max_connections=2) as http:
        answers = await asyncio.gather(*(http.get(server.url) for _ in range(6)))
        assert [a.status_code for a in answers] == [200] * 6
        async with client(httpx.Timeout(2.0, pool=0.01), max_connections=1) as tight:
            results = await asyncio.gather(*(tight.get(server.url) for _ in range(3)), return_exceptions=True)
        assert any(isinstance(r, httpx.PoolTimeout) for r in results)
    assert server.connections <= 3  # two for the first client, one for the tight one


async def test_unsupported_schemes_and_methods() -> None:
    async with client() as http:
        with pytest.raises(httpx.UnsupportedProtocol):
            await http.head("http://127.0.0.1:1/")


# --- TLS -------------------------------------------------------------------------------------------
def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acm.test")])
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(san, False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


async def test_tls_verifies_the_server_and_keeps_the_connection_alive(tmp_path: Path) -> None:
    cert_file, key_file = _certificate(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cafile=str(cert_file))
    async with serving(keep_alive(OK, OK), tls=served) as server:
        url = f"https://127.0.0.1:{server.port}/"
        async with client(ssl_context=trusting) as http:
            assert (await http.get(url)).json() == {"ok": True}
            assert (await http.get(url)).json() == {"ok": True}
        assert server.connections == 1
        async with client() as http:  # the default trust store does not know this certificate
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await http.get(url)


# --- what a lying or sloppy server sends (found in review) -----------------------------------------
A = b'HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{"pupil":"A"}'
B = b'HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{"pupil":"B"}'


async def test_a_second_answer_glued_to_the_first_is_nobodys_answer() -> None:
    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(A + B)
        await reader.read()

    async with serving(handler) as server, client() as http:
        assert (await http.get(server.url)).json() == {"pupil": "A"}
        assert (await http.get(server.url)).json() == {"pupil": "A"}  # on a new connection, never B
    assert server.connections == 2


async def test_the_start_of_an_unasked_answer_never_reaches_the_next_request() -> None:
    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(A + B[:30])
        await writer.drain()
        await server.read_request(reader)
        writer.write(B[30:])
        await reader.read()

    async with serving(handler) as server, client() as http:
        assert (await http.get(server.url)).json() == {"pupil": "A"}
        # never B, which was sent before this request existed: a new connection, its own answer
        assert (await http.get(server.url)).json() == {"pupil": "A"}
    assert server.connections == 2


async def test_garbage_after_an_answer_closes_the_connection() -> None:
    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(A + b"XYZ garbage")
        await reader.read()

    async with serving(handler) as server, client() as http:
        answer = await http.get(server.url)
        assert (answer.status_code, answer.json()) == (200, {"pupil": "A"})
        transport = http._transport
        assert isinstance(transport, Http1Transport)
        assert not any(transport._idle.values())


async def test_a_hang_up_after_an_earlier_answer_leaves_nothing_of_it_behind() -> None:
    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 204 No Content\r\nX-Stale: 1\r\n\r\n")
        await writer.drain()
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()

    async with serving(handler) as server, client() as http:
        assert (await http.get(server.url)).status_code == 204
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(server.url)


async def test_a_reset_connection_is_not_the_end_of_a_close_delimited_body() -> None:
    import socket
    import struct

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"sub": "12')
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        writer.transport.abort()

    async with serving(handler) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(server.url)


async def test_trailer_fields_are_not_header_fields() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
    chunked += b"2\r\n{}\r\n0\r\nContent-Type: text/evil\r\nX-Trailer: 1\r\n\r\n"
    async with scripted(chunked) as server, client() as http:
        answer = await http.get(server.url)
    assert answer.headers.get_list("content-type") == ["application/json"]
    assert "x-trailer" not in answer.headers


async def test_close_delimited_with_a_transfer_coding_other_than_chunked() -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n{}"
    async with serving(hang_up_after(answer)) as server, client() as http:
        assert (await http.get(server.url)).content == b"{}"


async def test_the_http_version_is_the_servers() -> None:
    async with scripted(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}") as server, client() as http:
        assert (await http.get(server.url)).http_version == "HTTP/1.0"


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET / HTTP/1.1\r\nX-INJECTED: 1\r\nX:", {}),
        ("GÉT", {}),
        ("GET", {"X-Value": "a\x0bb"}),
        ("GET", {"X-Value": "a\x7fb"}),
    ],
)
async def test_a_request_that_could_be_misread_is_never_sent(method: str, headers: dict[str, str]) -> None:
    async with scripted(OK) as server, client() as http:
        with pytest.raises(httpx.LocalProtocolError):
            await http.request(method, server.url, headers=headers)
    assert server.requests == []


async def test_a_streaming_request_body_is_refused_not_sent_unframed() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

    async with scripted(OK) as server, client() as http:
        with pytest.raises(httpx.UnsupportedProtocol):
            await http.post(server.url, content=body())
    assert server.requests == []


async def test_an_early_final_answer_while_the_body_is_still_being_sent() -> None:
    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the head only; the body is never read
        writer.write(b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        await asyncio.sleep(0.5)

    async with serving(handler) as server, client(httpx.Timeout(2.0, write=1.0)) as http:
        answer = await http.post(server.url, content=b"x" * 8_000_000)
    assert answer.status_code == 413


async def test_a_connection_the_server_closed_right_after_its_answer_is_not_reused() -> None:
    """The keep-alive race (no Connection: close, then a close): the FIN is in the socket before
    the next request, but the event loop has not read it yet. Checked before reuse, as httpcore does."""

    failures = 0
    async with serving(hang_up_after(OK)) as server, client() as http:
        for _ in range(100):
            try:
                await http.get(server.url)
            except httpx.RemoteProtocolError:
                failures += 1
    assert failures == 0
    assert server.connections == 100
