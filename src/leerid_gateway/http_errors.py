"""Errors in one place (STYLE.md rule 5): every exception kind mapped to its HTTP shape.

Pupils get Dutch pages on their paths (/login, /callback), OAuth endpoints answer RFC 6749 §5.2
JSON, everything else RFC 9457 problem+json. Never a stack trace to a client.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from leerid_gateway.kit import metrics
from leerid_gateway.kit.errors import (
    OAUTH_PATHS,
    PUPIL_PATHS,
    OAuthError,
    ProblemError,
    PupilError,
    UpstreamError,
)
from leerid_gateway.kit.ratelimit import RateLimited
from leerid_gateway.oidc.return_to import with_error
from leerid_gateway.oidc.service import upstream_unavailable
from leerid_gateway.pages.render import render
from leerid_gateway.settings import Settings

log = logging.getLogger("leerid_gateway")


def _request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def _pupil_page(request: Request, exc: PupilError, settings: Settings) -> Response:
    metrics.login_failed(exc)  # every error page a pupil sees ends (or refuses) a login
    back = with_error(exc.return_to, exc.oauth_error) if exc.return_to and exc.oauth_error else exc.return_to
    retry_target = exc.return_to or settings.allowed_return_urls[0]
    retry = f"/login?return_to={quote(retry_target, safe='')}" if exc.retry else None
    response = render(
        "error.html",
        status=exc.status,
        title=exc.title,
        message=exc.message,
        retry_url=retry,
        back_url=back,
        request_id=_request_id(request),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _problem(status: int, title: str, detail: str | None, request: Request, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if (rid := _request_id(request)) is not None:
        body["request_id"] = rid
    body.update(extra)
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers={"Cache-Control": "no-store"}
    )


def _bad_request(status: int) -> PupilError:
    return PupilError(
        "bad_request",
        status=status,
        title="Deze link is niet geldig",
        message="De aanvraag was onvolledig of ongeldig. Ga terug naar eTeacher en probeer opnieuw.",
    )


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Ask the router itself which methods fully match this path (nested routers included)."""
    methods = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope: dict[str, Any] = {
            "type": "http",
            "path": path,
            "method": method,
            "root_path": "",
            "headers": [],
        }
        if any(route.matches(scope)[0] is Match.FULL for route in app.router.routes):
            methods.append(method)
    return methods


def install(app: FastAPI, settings: Settings) -> None:
    """Errors in one place: pupils get Dutch pages, OAuth endpoints RFC 6749 §5.2, the rest RFC 9457."""

    @app.exception_handler(PupilError)
    async def pupil_error(request: Request, exc: PupilError) -> Response:
        log.info("pupil error %s", exc.reason)
        return _pupil_page(request, exc, settings)

    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, exc: RateLimited) -> Response:
        """RFC 6585 §4: 429 with Retry-After; a Dutch page on the pupil's paths."""
        response: Response
        if request.url.path.startswith(PUPIL_PATHS):
            response = _pupil_page(
                request,
                PupilError(
                    "rate_limited",
                    status=429,
                    title="Even geduld",
                    message="Er worden nu heel veel aanmeldingen tegelijk gedaan. "
                    "Probeer het over een minuutje opnieuw.",
                    retry=True,
                ),
                settings,
            )
        else:
            response = _problem(429, "Too many requests", "Slow down and retry later.", request)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(OAuthError)
    async def oauth_error(request: Request, exc: OAuthError) -> Response:
        body = {"error": exc.error}
        if exc.description:
            body["error_description"] = exc.description
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if exc.www_authenticate:
            headers["WWW-Authenticate"] = exc.www_authenticate
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(ProblemError)
    async def problem_error(request: Request, exc: ProblemError) -> Response:
        response = _problem(exc.status, exc.title, exc.detail, request)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(UpstreamError)
    async def upstream_error(request: Request, exc: UpstreamError) -> Response:
        log.warning("upstream failure kind=%s", exc.kind)
        if request.url.path.startswith(PUPIL_PATHS):
            return _pupil_page(request, upstream_unavailable(None), settings)
        return _problem(502, "Upstream failure", "The identity provider did not answer usefully.", request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith(PUPIL_PATHS):
            return _pupil_page(request, _bad_request(400), settings)
        if request.url.path in OAUTH_PATHS:
            return await oauth_error(request, OAuthError("invalid_request", "missing or invalid parameters"))
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return _problem(
            422, "Invalid request", "Some parameters are missing or invalid.", request, errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Framework errors (unparseable or oversized bodies, 404, 405) in the path's own error shape."""
        path, status = request.url.path, exc.status_code
        response: Response
        if status == 405:
            response = _problem(status, str(exc.detail), None, request)
            # RFC 9110 §15.5.6: Allow lists every method of every route on this path.
            response.headers["Allow"] = ", ".join(_allowed_methods(app, path))
            return response
        if 400 <= status < 500 and path.startswith(PUPIL_PATHS):
            return _pupil_page(request, _bad_request(status), settings)
        if 400 <= status < 500 and path in OAUTH_PATHS:
            return await oauth_error(
                request, OAuthError("invalid_request", "the request could not be parsed")
            )
        response = _problem(status, str(exc.detail), None, request)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path)
        if request.url.path.startswith(PUPIL_PATHS):
            return _pupil_page(
                request,
                PupilError(
                    "internal",
                    status=500,
                    title="Er ging iets mis",
                    message="Er liep iets mis bij het aanmelden. Er werd niets bewaard. Probeer opnieuw.",
                    retry=True,
                ),
                settings,
            )
        return _problem(500, "Internal error", None, request)
