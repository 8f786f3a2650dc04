"""kit/forms: the hand-written form parser agrees with urllib.parse.parse_qsl (the reference)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leerid_gateway.kit.forms import _pairs, query_values

CASES = [
    "",
    "token=abc",
    "token=a.b.c&token_type_hint=access_token",
    "token=",
    "token",
    "&&token=x&&",
    "a=1&a=2",
    "client_id=my%20client&client_secret=s%2Bcr%3Dt",
    "client_id=my+client",
    "na%6De=v",
    "x=%E2%82%AC",
    "x==y",
    "=value",
    "x=%zz",
    "x=%",
]


@pytest.mark.parametrize("body", CASES)
def test_same_pairs_as_parse_qsl(body: str) -> None:
    assert _pairs(body, 100) == parse_qsl(body, keep_blank_values=True, max_num_fields=100, errors="strict")


@pytest.mark.parametrize("body", ["x=%FF", "x=%C3%28", "%FF=1"])
def test_invalid_utf8_after_decoding_is_refused_like_parse_qsl(body: str) -> None:
    with pytest.raises(UnicodeDecodeError):
        parse_qsl(body, keep_blank_values=True, errors="strict")
    with pytest.raises(UnicodeDecodeError):
        _pairs(body, 100)


def test_too_many_fields_is_refused_like_parse_qsl() -> None:
    body = "&".join(f"f{i}=v" for i in range(101))
    with pytest.raises(ValueError):
        parse_qsl(body, max_num_fields=100)
    with pytest.raises(ValueError):
        _pairs(body, 100)


@given(st.text(alphabet="ab=&%+2F0E9 ~.-_", max_size=40))
def test_any_ascii_body_parses_as_parse_qsl_does(body: str) -> None:
    try:
        expected = parse_qsl(body, keep_blank_values=True, max_num_fields=100, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            _pairs(body, 100)
        return
    assert _pairs(body, 100) == expected


QUERIES = [
    *CASES,
    "code=abc&state=xyz&iss=https%3A%2F%2Facm.example",
    "return_to=https://eteacher.example/cursus?les=3",
    "x=%FF&y=%C3%28",  # undecodable after percent-decoding: replaced, as QueryParams does
    "x=a+b&x=c",
    "na+me=1&na%20me=2",
    "caf\xe9=\xff",  # raw non-ASCII bytes: latin-1
    "a=1;b=2",  # ';' is no separator (Python 3.10+, as in Starlette)
]


def _starlette(query: bytes) -> dict[str, str]:
    from starlette.datastructures import QueryParams

    params = QueryParams(query)
    return {name: params[name] for name in params}


@pytest.mark.parametrize("query", QUERIES)
def test_query_values_as_starlette_reads_them(query: str) -> None:
    raw = query.encode("latin-1")
    assert query_values(raw) == _starlette(raw)


@given(st.binary(max_size=60) | st.text(alphabet="ab=&%+2F0C3é;", max_size=40).map(lambda s: s.encode()))
def test_any_query_reads_as_starlette_reads_it(raw: bytes) -> None:
    assert query_values(raw) == _starlette(raw)
