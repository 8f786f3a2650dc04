"""Cookie attributes (RFC 6265bis): __Host- and Secure on https, form_post survives cross-site."""

from __future__ import annotations

from typing import Any

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
