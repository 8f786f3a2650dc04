"""The two cookies: the short login binding and the session. Attributes per RFC 6265bis.

- ``__Host-`` prefix, ``Secure`` whenever the public URL is https (RFC 6265bis §4.1.3.2).
- The login binding must survive ACM's form_post: a cross-site POST does not carry a
  ``SameSite=Lax`` cookie, so in form_post mode it is ``SameSite=None`` (which browsers accept only
  with ``Secure``). It lives for the length of one login and protects only that login.
- The session cookie is ``SameSite=Lax``: it is set on the 303 that follows the callback and sent
  by eTeacher's same-site frontend; cross-site POSTs never carry it.
"""

from __future__ import annotations

from fastapi import Request, Response

from leerid_gateway.kit.errors import ProblemError
from leerid_gateway.settings import ResponseMode, Settings


def _name(settings: Settings, base: str) -> str:
    return f"__Host-{base}" if settings.secure_cookies else base


def login_cookie_name(settings: Settings) -> str:
    return _name(settings, "leerid_login")


def session_cookie_name(settings: Settings) -> str:
    return _name(settings, "leerid_session")


def set_login_binding(response: Response, settings: Settings, value: str) -> None:
    same_site = (
        "none" if settings.oidc_response_mode is ResponseMode.FORM_POST and settings.secure_cookies else "lax"
    )
    response.set_cookie(
        login_cookie_name(settings),
        value,
        max_age=settings.oidc_login_ttl,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite=same_site,  # type: ignore[arg-type]
    )


def clear_login_binding(response: Response, settings: Settings) -> None:
    same_site = (
        "none" if settings.oidc_response_mode is ResponseMode.FORM_POST and settings.secure_cookies else "lax"
    )
    response.delete_cookie(
        login_cookie_name(settings),
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite=same_site,  # type: ignore[arg-type]
    )


def set_session(response: Response, settings: Settings, value: str) -> None:
    response.set_cookie(
        session_cookie_name(settings),
        value,
        max_age=settings.session_absolute_ttl,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def clear_session(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        session_cookie_name(settings), path="/", secure=settings.secure_cookies, httponly=True, samesite="lax"
    )


def check_origin(request: Request, settings: Settings) -> None:
    """Cookie-authenticated POSTs must come from us or an allowed eTeacher origin (CSRF defence,
    RFC 6819 §5.3.5 / the Fetch standard's Origin header); requests without Origin (non-browser
    clients, same-origin navigations in older browsers) pass, and SameSite=Lax covers them."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = settings.issuer.lower()
    own_origin = own.split("/", 3)
    own_origin_str = "/".join(own_origin[:3])
    if origin.lower() != own_origin_str and origin.lower() not in settings.effective_cors_origins:
        raise ProblemError(403, "Forbidden origin", "This origin may not use the session cookie.")
