"""Pure ASGI middleware (no BaseHTTPMiddleware overhead on the hot path): request ids, headers."""

from __future__ import annotations

import contextvars
import re
import secrets

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
    """Accepts a sane ``X-Request-ID`` or makes one; echoes it; adds the security headers (each only
    where the application set none of its own)."""

    def __init__(self, app: ASGIApp, *, hsts: bool, page_form_targets: str = "") -> None:
        self.app = app
        self.hsts = hsts
        self.page_csp = PAGE_CSP.format(form=page_form_targets).replace("  ", " ")
        # The raw header fields, made once (every response carries them).
        defaults = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts:
            defaults.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        self._defaults = tuple(defaults)
        self._page_csp = self.page_csp.encode("latin-1")
        self._api_csp = API_CSP.encode("latin-1")

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
        echoed = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = []
                present: set[bytes] = set()
                content_type = b""
                for name, value in message.get("headers", ()):
                    lowered = name.lower()
                    if lowered == b"x-request-id":
                        continue  # ours replaces it
                    if lowered == b"content-type":
                        content_type = value
                    present.add(lowered)
                    headers.append((name, value))
                headers.append(echoed)
                headers.extend(field for field in self._defaults if field[0] not in present)
                if b"content-security-policy" not in present:
                    if path.startswith(("/docs", "/redoc")):
                        # Swagger UI loads its scripts from a CDN; it still may not be framed.
                        headers.append((b"content-security-policy", b"frame-ancestors 'none'"))
                    else:
                        csp = self._page_csp if content_type.startswith(b"text/html") else self._api_csp
                        headers.append((b"content-security-policy", csp))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            request_id_var.reset(token)
