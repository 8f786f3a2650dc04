"""Make the OpenAPI document say what the gateway really answers (checked by schemathesis).

FastAPI documents a 422 `HTTPValidationError` on every route with parameters and nothing about our
error handlers; this module rewrites the generated document once, in one place, from the same
rules `app.py`'s handlers follow:

- pupil paths (/login, /callback) answer errors with Dutch HTML pages, never 422;
- OAuth endpoints (/introspect, /revoke) answer RFC 6749 §5.2 JSON errors (400 instead of 422);
- every other error is RFC 9457 `application/problem+json`;
- rate-limited routes may answer 429 (RFC 6585 §4) with Retry-After.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from leerid_gateway.kit.errors import OAUTH_PATHS, PUPIL_PATHS

RATE_LIMITED_PREFIXES = ("/login", "/callback", "/introspect", "/revoke", "/events", "/admin")

PROBLEM = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"loc": {"type": "array", "items": {}}, "msg": {"type": "string"}},
            },
        },
    },
}
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_HTML = {"text/html": {"schema": {"type": "string"}}}
_OAUTH = {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthErrorResponse"}}}


# Fresh copies each time: shared dicts would come out of the YAML dump as anchors and aliases.
def _problem() -> dict[str, Any]:
    return copy.deepcopy(_PROBLEM)


def _html() -> dict[str, Any]:
    return copy.deepcopy(_HTML)


def _oauth() -> dict[str, Any]:
    return copy.deepcopy(_OAUTH)


def _error_content(path: str) -> dict[str, Any]:
    if path in PUPIL_PATHS:
        return _html()
    if path in OAUTH_PATHS:
        return _oauth()
    return _problem()


def _fix_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "422" in responses:
        if path in PUPIL_PATHS or path in OAUTH_PATHS:
            del responses["422"]
        else:
            responses["422"] = {"description": "Invalid parameters", "content": _problem()}
    if path in PUPIL_PATHS:
        responses.setdefault("400", {"description": "Dutch error page"})
        responses.setdefault("500", {"description": "Dutch error page: nothing was stored"})
    if path in OAUTH_PATHS:
        responses.setdefault("400", {"description": "RFC 6749 §5.2 invalid_request"})
    if path.startswith(RATE_LIMITED_PREFIXES):
        responses.setdefault("429", {"description": "Too many requests (Retry-After says when to retry)"})
    if path.startswith("/admin") and method in ("post", "put", "patch"):
        responses.setdefault("400", {"description": "The body could not be parsed"})
    for code, response in responses.items():
        if code.isdigit() and int(code) >= 400 and not (path == "/readyz" and code == "503"):
            # Internal clients are authenticated the OAuth way everywhere, /events included.
            response["content"] = _oauth() if (path == "/events" and code == "401") else _error_content(path)


def _fix_specials(paths: dict[str, Any]) -> None:
    logout = paths.get("/logout", {}).get("post")
    if logout is not None:
        responses = logout["responses"]
        responses["400"] = {"description": "return_to not allowed (Dutch page)", "content": _html()}
        responses["403"] = {"description": "Foreign Origin", "content": _problem()}
        responses["502"] = {"description": "ACM's logout endpoint unknown", "content": _problem()}
    for path in ("/token", "/me"):
        for operation in paths.get(path, {}).values():
            operation["responses"]["401"] = {"description": "No live session", "content": _problem()}
    token = paths.get("/token", {}).get("post")
    if token is not None:
        token["responses"]["403"] = {"description": "Foreign Origin", "content": _problem()}
    jwks = paths.get("/.well-known/jwks.json", {}).get("get")
    if jwks is not None:
        jwks["responses"]["200"] = {
            "description": "RFC 7517 JWK Set",
            "content": {"application/jwk-set+json": {"schema": {"type": "object"}}},
        }
    revoke = paths.get("/revoke", {}).get("post")
    if revoke is not None:
        revoke["responses"]["200"] = {"description": "Revoked, or nothing to revoke (RFC 7009 §2.2)"}
    readyz = paths.get("/readyz", {}).get("get")
    if readyz is not None:
        readyz["responses"]["503"] = {
            "description": "Not ready (database, provider or draining)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    # /introspect and /revoke take Basic *or* form fields (never both, RFC 6749 §2.3), which a
    # security requirement cannot say; their form fields document it. /events takes Basic only.
    for operation in paths.get("/events", {}).values():
        operation["security"] = [{"InternalClientBasic": []}]


def customise(app: FastAPI) -> None:
    original: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            for path, item in schema.get("paths", {}).items():
                for method, operation in item.items():
                    _fix_operation(path, method, operation)
            _fix_specials(schema.get("paths", {}))
            components = schema.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            schemas["Problem"] = PROBLEM
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            components.setdefault("securitySchemes", {})["InternalClientBasic"] = {
                "type": "http",
                "scheme": "basic",
                "description": "An internal client's id and secret (`leerid-gateway clients add`); "
                "on /introspect and /revoke the form fields client_id/client_secret work too.",
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
