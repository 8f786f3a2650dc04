"""A small, strict reader of application/x-www-form-urlencoded bodies for the OAuth endpoints.

Used on the hot path (/introspect) instead of FastAPI's form machinery, which costs more than the
introspection itself. Strict per RFC 6749 §3.1 ("parameters MUST NOT be included more than once")
and bounded in size; any defect is an RFC 6749 §5.2 ``invalid_request``.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from starlette.requests import Request

from leerid_gateway.kit.errors import OAuthError

FORM_TYPE = "application/x-www-form-urlencoded"


async def read_form(
    request: Request, known: frozenset[str], *, max_bytes: int = 16384, max_fields: int = 100
) -> dict[str, str]:
    """The ``known`` parameters of the body. Unrecognised ones are ignored (RFC 6749 §3.1); a known
    one given twice is refused."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != FORM_TYPE:
        raise OAuthError("invalid_request", f"the body must be {FORM_TYPE}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise OAuthError("invalid_request", "the body is too large")
    try:
        pairs = _pairs(body.decode("ascii"), max_fields)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the body could not be parsed") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name not in known:
            continue
        if name in form:
            raise OAuthError("invalid_request", f"parameter {name!r} given more than once")
        form[name] = value
    return form


def _pairs(text: str, max_fields: int | None, errors: str = "strict") -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields, errors=errors)``, with
    percent-decoding only where a ``%`` or ``+`` is present (a token never has either): a third of
    the cost of parse_qsl on an /introspect body. tests/test_forms.py checks it against parse_qsl."""
    if max_fields is not None and text.count("&") + 1 > max_fields:
        raise ValueError("too many fields")
    pairs = []
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name, errors=errors)
        if "%" in value or "+" in value:
            value = unquote_plus(value, errors=errors)
        pairs.append((name, value))
    return pairs


def query_values(query_string: bytes) -> dict[str, str]:
    """Each query parameter's value as Starlette's ``QueryParams`` gives it to FastAPI: the query
    decoded as latin-1, split as ``parse_qsl(keep_blank_values=True)`` splits it (undecodable bytes
    replaced), the *last* value of a name given twice. For the login's by-hand routes
    (oidc/router.py): half the cost of ``QueryParams`` on a callback's query, whose code and state
    need no decoding. tests/test_forms.py checks it against Starlette's."""
    return dict(_pairs(query_string.decode("latin-1"), None, errors="replace"))


def schema(properties: dict[str, dict[str, object]], required: list[str]) -> dict[str, object]:
    """The OpenAPI requestBody for a route that reads its form with read_form()."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                FORM_TYPE: {"schema": {"type": "object", "properties": properties, "required": required}}
            },
        }
    }
