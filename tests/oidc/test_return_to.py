"""return_to is checked after parsing (RFC 9700 §4.11 open redirectors, RFC 6819 §4.2.4)."""

from __future__ import annotations

import pytest

from leerid_gateway.oidc.return_to import MAX_LENGTH, is_allowed, with_error

PREFIXES = ["https://eteacher.example/app/"]

ALLOWED = [
    "https://eteacher.example/app/",
    "https://eteacher.example/app",  # the prefix without its trailing slash is the same place
    "https://eteacher.example/app/lessen/42",
    "https://eteacher.example/app/?tab=rooster",
    "https://eteacher.example/app/#/dashboard",
    "https://eteacher.example/app/?next=%2Fapp%2Fx",  # encoded slashes in the query change no path
    "https://eteacher.example:443/app/",  # the default port written out
    "HTTPS://ETEACHER.EXAMPLE/app/",  # RFC 3986 §6.2.2.1: scheme and host are case-insensitive
    "https://eTeacher.Example/app/x",
    "https://eteacher.example/app/a%20b",
    "https://eteacher.example/app/..x/file",  # a segment that merely starts with dots
]

REFUSED = [
    # other hosts and open-redirect tricks
    "//evil.example/app/",
    "///evil.example/app/",
    "https:///evil.example/app/",  # browsers read this as https://evil.example/app/
    "https:evil.example/app/",
    "https://evil.example/app/",
    "https://eteacher.example.evil.example/app/",
    "https://eteacher.example@evil.example/app/",
    "https://user:pw@eteacher.example/app/",
    "https://@eteacher.example/app/",
    "https://evil.example#@eteacher.example/app/",
    "https://eteacher.example:443@evil.example/app/",
    "https://eteacher.example./app/",  # trailing-dot FQDN is a different origin string
    # backslashes (WHATWG URL treats \ as / in special schemes)
    "https://eteacher.example\\@evil.example/app/",
    "https:\\\\evil.example/app/",
    "https://eteacher.example/app/\\..\\..\\evil",
    "/\\evil.example/app/",
    # encoded and double-encoded separators and dots
    "https://eteacher.example/app/%2f%2fevil.example",
    "https://eteacher.example/app/%2F..%2Fadmin",
    "https://eteacher.example/app/%252f%252fevil",
    "https://eteacher.example/app/%5cevil",
    "https://eteacher.example/app/%5C%5Cevil",
    "https://eteacher.example/app/%2e%2e/admin",
    "https://eteacher.example/app/%2E%2E/admin",
    "https://eteacher.example/app/.%2e/admin",
    "https://eteacher.example/app/%252e%252e/admin",
    "https://eteacher%2eexample/app/",
    # dot segments that a browser resolves out of the prefix
    "https://eteacher.example/app/../admin",
    "https://eteacher.example/app/./../admin",
    "https://eteacher.example/app/x/../../admin",
    "https://eteacher.example/app/..",
    # control characters and whitespace
    "https://eteacher.example/app/\r\nLocation: https://evil.example",
    "https://eteacher.example/app/\n",
    "https://eteacher.example/app/\tx",
    "\thttps://eteacher.example/app/",
    " https://eteacher.example/app/",
    "https://eteacher.example/app/ x",
    "https://eteacher.example/app/\x00",
    "https://eteacher.example/app/\x7f",
    "java\tscript:alert(1)//https://eteacher.example/app/",
    # other schemes
    "javascript:alert(1)",
    "javascript://eteacher.example/app/%0aalert(1)",
    "JavaScript:alert(document.domain)",
    "data:text/html,<script>alert(1)</script>",
    "ftp://eteacher.example/app/",
    "file:///etc/passwd",
    "vbscript:msgbox(1)",
    # other origin on the same host
    "http://eteacher.example/app/",
    "https://eteacher.example:8443/app/",
    "https://eteacher.example:80/app/",
    "https://eteacher.example:99999/app/",
    "https://eteacher.example:abc/app/",
    # path prefix boundary
    "https://eteacher.example/application",
    "https://eteacher.example/app-admin/",
    "https://eteacher.example/appx/",
    "https://eteacher.example/",
    "https://eteacher.example/APP/",
    "https://eteacher.example",
    # IDN and non-ASCII
    "https://\u0435teacher.example/app/",  # Cyrillic small ie (U+0435) for the first e
    "https://eteacher.example/app/ünïcode",
    "https://xn--eteacher-9of.example/app/",
    "https://eteacher.example\u3002evil.example/app/",  # ideographic full stop
    "https://eteacher.example/app/\u202e",
    # relative and empty
    "",
    "/app/",
    "app/",
    "?next=/app/",
    "#/app/",
    # length
    "https://eteacher.example/app/" + "a" * MAX_LENGTH,
]


@pytest.mark.parametrize("url", ALLOWED)
def test_urls_within_the_prefix_are_allowed(url: str) -> None:
    assert is_allowed(url, PREFIXES)


@pytest.mark.parametrize("url", REFUSED)
def test_everything_else_is_refused(url: str) -> None:
    assert not is_allowed(url, PREFIXES)


def test_the_table_is_large_enough_to_mean_something() -> None:
    assert len(ALLOWED) + len(REFUSED) >= 30


def test_length_limit_is_inclusive() -> None:
    base = "https://eteacher.example/app/"
    assert is_allowed(base + "a" * (MAX_LENGTH - len(base)), PREFIXES)
    assert not is_allowed(base + "a" * (MAX_LENGTH - len(base) + 1), PREFIXES)


def test_no_prefixes_allow_nothing() -> None:
    assert not is_allowed("https://eteacher.example/app/", [])


def test_any_of_several_prefixes_allows() -> None:
    prefixes = ["https://eteacher.example/app/", "http://127.0.0.1:5173/"]
    assert is_allowed("http://127.0.0.1:5173/callback", prefixes)
    assert not is_allowed("http://127.0.0.1:5174/callback", prefixes)
    assert not is_allowed("http://localhost:5173/callback", prefixes)


def test_prefix_without_trailing_slash_stops_at_a_segment_boundary() -> None:
    prefixes = ["https://eteacher.example/app"]
    assert is_allowed("https://eteacher.example/app", prefixes)
    assert is_allowed("https://eteacher.example/app/x", prefixes)
    assert not is_allowed("https://eteacher.example/application", prefixes)


def test_prefix_with_mixed_case_host_matches_the_lowercased_candidate() -> None:
    assert is_allowed("https://eteacher.example/app/", ["https://ETeacher.Example/app/"])


def test_bare_origin_prefix_allows_the_whole_origin() -> None:
    prefixes = ["https://eteacher.example"]
    assert is_allowed("https://eteacher.example/", prefixes)
    assert is_allowed("https://eteacher.example/anything", prefixes)
    assert not is_allowed("https://eteacher.example.evil/", prefixes)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://eteacher.example/app/", "https://eteacher.example/app/?error=access_denied"),
        ("https://eteacher.example/app/?tab=a", "https://eteacher.example/app/?tab=a&error=access_denied"),
        ("https://eteacher.example/app/#/x", "https://eteacher.example/app/?error=access_denied"),
        ("https://eteacher.example/app/?a=1#frag", "https://eteacher.example/app/?a=1&error=access_denied"),
    ],
)
def test_with_error_appends_the_error_and_drops_the_fragment(url: str, expected: str) -> None:
    result = with_error(url, "access_denied")
    assert result == expected
    assert is_allowed(result, PREFIXES)
