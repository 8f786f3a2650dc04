"""One log line and one histogram observation per request (pure ASGI, like kit/middleware.py).

The line names the route *template* (``/callback``, never the URL: a query may carry an authorization
code), the method, the status and the duration; the request id comes from the log formatter. No
cookies, no bodies, no query strings. A path that matches no route is logged as ``<unmatched>``.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leerid_gateway.kit import metrics
from leerid_gateway.kit.logging import log_info

log = logging.getLogger("leerid_gateway.request")
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before it answers, the server's error page is a 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            metrics.observe_request(method, route, status, elapsed)
            duration_ms = round(elapsed * 1000, 1)
            fields = {"method": method, "path": route, "status": status, "duration_ms": duration_ms}
            log_info(log, "%s %s %d", (method, route, status), fields)
