"""HTTP Basic client credentials on /introspect: RFC 6749 §2.3.1 urlencoded id and secret."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import pytest

from leerid_gateway.clients.service import parse_basic


def basic(raw: bytes | str, scheme: str = "Basic") -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return f"{scheme} {base64.b64encode(data).decode()}"


def test_plain_id_and_secret() -> None:
    assert parse_basic(basic("lgc_abc:lgs_def")) == ("lgc_abc", "lgs_def")


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [
        ("e:teacher", "s3cr:et"),
        ("a+b", "with space"),
        ("100%", "%20 is not a space"),
        ("é-client", "ünïcode/+=&?"),
    ],
)
def test_urlencoded_id_and_secret_are_decoded(client_id: str, secret: str) -> None:
    """RFC 6749 §2.3.1: both are application/x-www-form-urlencoded before the Basic encoding."""
    header = basic(f"{quote_plus(client_id)}:{quote_plus(secret)}")
    assert parse_basic(header) == (client_id, secret)


def test_only_the_first_colon_separates() -> None:
    # A client that did not urlencode a ':' in its secret still gets it back intact.
    assert parse_basic(basic("id:sec:ret")) == ("id", "sec:ret")


def test_empty_secret_is_returned_as_empty() -> None:
    assert parse_basic(basic("lgc_abc:")) == ("lgc_abc", "")


@pytest.mark.parametrize("scheme", ["basic", "BASIC", "bAsIc"])
def test_scheme_is_case_insensitive(scheme: str) -> None:
    """RFC 9110 §11.1: the authentication scheme is case-insensitive."""
    assert parse_basic(basic("a:b", scheme)) == ("a", "b")


@pytest.mark.parametrize(
    "header",
    [
        basic("no-colon-here"),
        basic(""),
        basic("a:b", "Bearer"),
        basic("a:b", "Digest"),
        basic("a:b", "Basicx"),
        "Basic",
        "Basic ",
        "",
        "Basic not*base64!",
        "Basic YTpi YTpi",  # whitespace inside the token68
        "Basic YTpi\x00",
        "Basic " + base64.b64encode(b"a:bc").decode().rstrip("="),  # missing padding
        basic(b"\xff\xfe:\x80"),  # not UTF-8
        "YTpi",  # no scheme at all
    ],
)
def test_malformed_headers_give_none(header: str) -> None:
    assert parse_basic(header) is None
