"""An ASGI wrapper around the stand-in provider that lets a test make one endpoint misbehave."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Handler = Callable[[Scope, Any, Any, Any], Awaitable[None]]


class Faults:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.overrides: dict[str, Handler] = {}
        self.calls: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            self.calls[path] = self.calls.get(path, 0) + 1
            handler = self.overrides.get(path)
            if handler is not None:
                await handler(scope, receive, send, self.app)
                return
        await self.app(scope, receive, send)

    def clear(self) -> None:
        self.overrides.clear()


def fixed(status: int, body: bytes, content_type: str = "application/json") -> Handler:
    """Answer with a fixed response instead of the provider's."""

    async def handler(scope: Scope, receive: Any, send: Any, app: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return handler


def rewrite_json(change: Callable[[dict[str, Any]], None]) -> Handler:
    """Let the provider answer, then change its JSON body (e.g. corrupt the id_token)."""

    async def handler(scope: Scope, receive: Any, send: Any, app: Any) -> None:
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(scope, receive, capture)
        data = json.loads(b"".join(chunks))
        change(data)
        body = json.dumps(data).encode()
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return handler


def slow(seconds: float) -> Handler:
    """Answer only after a delay (a provider that hangs)."""
    import asyncio

    async def handler(scope: Scope, receive: Any, send: Any, app: Any) -> None:
        await asyncio.sleep(seconds)
        await app(scope, receive, send)

    return handler


def sequence(*handlers: Handler | None) -> Handler:
    """The n-th call gets the n-th handler (None: the real provider); the last one repeats."""
    calls = {"n": 0}

    async def handler(scope: Scope, receive: Any, send: Any, app: Any) -> None:
        chosen = handlers[min(calls["n"], len(handlers) - 1)]
        calls["n"] += 1
        if chosen is None:
            await app(scope, receive, send)
        else:
            await chosen(scope, receive, send, app)

    return handler


def truncated(declared: int, body: bytes) -> Handler:
    """Promise ``declared`` bytes, send fewer, and hang up."""

    async def handler(scope: Scope, receive: Any, send: Any, app: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(declared).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return handler
