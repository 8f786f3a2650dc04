"""Cookie attributes (RFC 6265bis): __Host- and Secure on https, form_post survives cross-site."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import Response

from leerid_gateway.sessions import cookies
from leerid_gateway.settings import Settings


def settings(public_url: str, response_mode: str = "query") -> Settings:
    values: dict[str, Any] = {
        "environment": "development",
        "public_url": public_url,
        "oidc_issuer": "https://authenticatie-ti.vlaanderen.be/op",
        "oidc_client_id": "eteacher",
        "oidc_client_secret": "client-secret-for-tests",
        "oidc_response_mode": response_mode,
        "allowed_return_urls": ["https://eteacher.example/"],
        "secret_key": "x" * 40,
    }
    return Settings(**values)


def set_cookie_headers(response: Response) -> list[str]:
    return [v.decode() for k, v in response.raw_headers if k == b"set-cookie"]


def test_https_session_cookie_is_host_prefixed_secure_httponly_lax() -> None:
    response = Response()
    cookies.set_session(response, settings("https://login.eteacher.example"), "value")
    (header,) = set_cookie_headers(response)
    assert header.startswith("__Host-leerid_session=value;")
    for attribute in ("Secure", "HttpOnly", "Path=/", "SameSite=lax"):
        assert attribute in header
    assert "Domain" not in header  # RFC 6265bis §4.1.3.2: __Host- forbids Domain


def test_form_post_login_cookie_is_samesite_none_so_the_cross_site_post_carries_it() -> None:
    response = Response()
    cookies.set_login_binding(response, settings("https://login.eteacher.example", "form_post"), "b")
    (header,) = set_cookie_headers(response)
    assert header.startswith("__Host-leerid_login=b;")
    assert "SameSite=none" in header
    assert "Secure" in header


def test_query_mode_login_cookie_stays_lax() -> None:
    response = Response()
    cookies.set_login_binding(response, settings("https://login.eteacher.example", "query"), "b")
    (header,) = set_cookie_headers(response)
    assert "SameSite=lax" in header


def test_plain_http_development_has_no_prefix_and_no_secure() -> None:
    response = Response()
    cookies.set_session(response, settings("http://127.0.0.1:8000"), "value")
    (header,) = set_cookie_headers(response)
    assert header.startswith("leerid_session=value;")
    assert "Secure" not in header


def test_the_hand_written_headers_are_what_starlettes_set_cookie_writes() -> None:
    """cookies.py writes Set-Cookie itself (SimpleCookie cost ~80 µs a login): the same attributes in
    the same order as Starlette's set_cookie/delete_cookie, for every mode; a deletion's Expires is a
    fixed date in the past instead of "now" (Max-Age=0 decides, RFC 6265bis §5.6.2)."""
    for url, mode in (("https://login.eteacher.example", "form_post"), ("http://127.0.0.1:8000", "query")):
        s = settings(url, mode)
        ours, starlettes = Response(), Response()
        cookies.set_login_binding(ours, s, "Ab-9_z")
        cookies.clear_login_binding(ours, s)
        cookies.set_session(ours, s, "Ab-9_z")
        cookies.clear_session(ours, s)
        login, session = cookies.login_cookie_name(s), cookies.session_cookie_name(s)
        same_site: Any = "none" if mode == "form_post" else "lax"
        common: dict[str, Any] = {"path": "/", "secure": s.secure_cookies, "httponly": True}
        starlettes.set_cookie(login, "Ab-9_z", max_age=s.oidc_login_ttl, samesite=same_site, **common)
        starlettes.delete_cookie(login, samesite=same_site, **common)
        starlettes.set_cookie(session, "Ab-9_z", max_age=s.session_absolute_ttl, samesite="lax", **common)
        starlettes.delete_cookie(session, samesite="lax", **common)
        expected = [
            re.sub(r"expires=[^;]*", "expires=Thu, 01 Jan 1970 00:00:00 GMT", header)
            for header in set_cookie_headers(starlettes)
        ]
        assert set_cookie_headers(ours) == expected


def test_a_value_that_is_not_one_of_our_tokens_is_refused() -> None:
    for value in ("", "a;b", "a b", 'a"', "é", "x" * 201):
        with pytest.raises(ValueError, match="token"):
            cookies.set_session(Response(), settings("https://login.eteacher.example"), value)
