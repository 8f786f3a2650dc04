"""The two cookies: the short login binding and the session. Attributes per RFC 6265bis.

- ``__Host-`` prefix, ``Secure`` whenever the public URL is https (RFC 6265bis §4.1.3.2).
- The login binding must survive ACM's form_post: a cross-site POST does not carry a
  ``SameSite=Lax`` cookie, so in form_post mode it is ``SameSite=None`` (which browsers accept only
  with ``Secure``). It lives for the length of one login and protects only that login.
- The session cookie is ``SameSite=Lax``: it is set on the 303 that follows the callback and sent
  by eTeacher's same-site frontend; cross-site POSTs never carry it.
"""

from __future__ import annotations

import re

from fastapi import Request, Response

from leerid_gateway.kit.errors import ProblemError
from leerid_gateway.settings import ResponseMode, Settings


def _name(settings: Settings, base: str) -> str:
    return f"__Host-{base}" if settings.secure_cookies else base


def login_cookie_name(settings: Settings) -> str:
    return _name(settings, "leerid_login")


def session_cookie_name(settings: Settings) -> str:
    return _name(settings, "leerid_session")


def _login_same_site(settings: Settings) -> str:
    form_post = settings.oidc_response_mode is ResponseMode.FORM_POST
    return "none" if form_post and settings.secure_cookies else "lax"


# Written by hand, with the attributes Starlette's ``set_cookie`` writes and in its order: the
# values are ours (random_token: base64url, RFC 6265 cookie-octets) and the names fixed, so nothing
# needs quoting, and SimpleCookie's Morsel machinery cost ~80 µs of CPU per login.
_VALUE = re.compile(r"[A-Za-z0-9_-]{1,200}")
# Expires in the past beside Max-Age=0 (RFC 6265bis §5.6.2: Max-Age wins): Starlette's delete_cookie
# writes the current time there, this a fixed date.
_EXPIRED = "expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Max-Age=0; Path=/; SameSite="


def _set(response: Response, name: str, value: str, max_age: int, same_site: str, secure: bool) -> None:
    if not _VALUE.fullmatch(value):
        raise ValueError("a cookie value must be a token of ours")
    header = f"{name}={value}; HttpOnly; Max-Age={max_age}; Path=/; SameSite={same_site}"
    response.raw_headers.append((b"set-cookie", (header + "; Secure" if secure else header).encode("ascii")))


def _delete(response: Response, name: str, same_site: str, secure: bool) -> None:
    header = f'{name}=""; {_EXPIRED}{same_site}'
    response.raw_headers.append((b"set-cookie", (header + "; Secure" if secure else header).encode("ascii")))


def set_login_binding(response: Response, settings: Settings, value: str) -> None:
    name, max_age = login_cookie_name(settings), settings.oidc_login_ttl
    _set(response, name, value, max_age, _login_same_site(settings), settings.secure_cookies)


def clear_login_binding(response: Response, settings: Settings) -> None:
    _delete(response, login_cookie_name(settings), _login_same_site(settings), settings.secure_cookies)


def set_session(response: Response, settings: Settings, value: str) -> None:
    name, max_age = session_cookie_name(settings), settings.session_absolute_ttl
    _set(response, name, value, max_age, "lax", settings.secure_cookies)


def clear_session(response: Response, settings: Settings) -> None:
    _delete(response, session_cookie_name(settings), "lax", settings.secure_cookies)


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
