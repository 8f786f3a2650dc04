"""Pure ASGI middleware (no BaseHTTPMiddleware overhead on the hot path): request ids, headers."""

from __future__ import annotations

import contextvars
import re
import secrets

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# APIs and pages alike: nothing loads from elsewhere, nothing frames us, no referrer leaks the
# authorization response (RFC 9700 §4.2.4). Pages need inline styles (and the form_post page a script).
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self' {form}; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class RequestContextMiddleware:
    """Accepts a sane ``X-Request-ID`` or makes one; echoes it; adds the security headers."""

    def __init__(self, app: ASGIApp, *, hsts: bool, page_form_targets: str = "") -> None:
        self.app = app
        self.hsts = hsts
        self.page_csp = PAGE_CSP.format(form=page_form_targets).replace("  ", " ")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if incoming and _VALID_ID.match(incoming) else secrets.token_hex(8)
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                if path.startswith(("/docs", "/redoc")):
                    # Swagger UI loads its scripts from a CDN; it still may not be framed.
                    headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
                else:
                    content_type = headers.get("content-type", "")
                    csp = self.page_csp if content_type.startswith("text/html") else API_CSP
                    headers.setdefault("Content-Security-Policy", csp)
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            request_id_var.reset(token)
