"""/token, /introspect, /revoke, the JWKS and RFC 8414 metadata."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from leerid_gateway.clients.auth import authenticate_client
from leerid_gateway.db import unit_of_work
from leerid_gateway.deps import DbSession, GatewayDep
from leerid_gateway.gateway import Gateway
from leerid_gateway.kit import forms, metrics
from leerid_gateway.kit.errors import OAuthError, ProblemError
from leerid_gateway.kit.first import FirstRoute, plain
from leerid_gateway.sessions import cookies
from leerid_gateway.sessions import service as sessions
from leerid_gateway.tokens.revocation import revoke_token
from leerid_gateway.tokens.schemas import (
    AccessTokenResponse,
    IntrospectionResponse,
    OAuthErrorResponse,
)
from leerid_gateway.tokens.service import issue, verify

router = APIRouter(tags=["tokens"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "/token",
    response_model=AccessTokenResponse,
    responses={
        401: {"description": "No live session (problem+json)"},
        403: {"description": "Foreign origin"},
    },
)
async def token(request: Request, gateway: GatewayDep, db: DbSession) -> JSONResponse:
    """A short-lived access token (RFC 9068 JWT) for the pupil whose session cookie is sent."""
    cookies.check_origin(request, gateway.settings)
    cookie = request.cookies.get(cookies.session_cookie_name(gateway.settings))
    rp = gateway.relying_party
    active = await sessions.resolve(db, rp.session_hasher, rp.session_policy, cookie) if cookie else None
    if active is None:
        raise ProblemError(401, "Not logged in", "No live session; send the browser to /login.")
    keys = gateway.keyring.current()
    issued = issue(
        keys,
        gateway.token_policy,
        sub=active.identity.sub,
        sid=active.sid,
        client_id=gateway.settings.token_client_id,
    )
    body = AccessTokenResponse(access_token=issued.token, expires_in=issued.expires_in)
    metrics.TOKENS_ISSUED.inc()
    return JSONResponse(body.model_dump(), headers=NO_STORE)


_CLIENT_FIELDS: dict[str, dict[str, object]] = {
    "client_id": {"type": "string", "maxLength": 128},
    "client_secret": {"type": "string", "maxLength": 256},
}
_TOKEN_FIELDS: dict[str, dict[str, object]] = {
    "token": {"type": "string", "minLength": 1, "maxLength": 8192},
    "token_type_hint": {"type": "string", "maxLength": 64},
    **_CLIENT_FIELDS,
}


_INTROSPECT_PARAMS = frozenset(_TOKEN_FIELDS)


@router.post(
    "/introspect",
    response_model=IntrospectionResponse,
    response_model_exclude_none=True,
    responses={400: {"model": OAuthErrorResponse}, 401: {"model": OAuthErrorResponse}},
    openapi_extra=forms.schema(_TOKEN_FIELDS, ["token"]),
)
async def introspect(request: Request) -> JSONResponse:
    """RFC 7662 token introspection for internal services (client authentication required).

    ``token_type_hint`` is accepted and ignored: we only have one kind of token (§2.1). The form is
    read by hand (kit/forms.py): this is the hot path, and FastAPI's form handling costs more than
    the introspection itself.
    """
    gateway: Gateway = request.app.state.gateway
    form = await forms.read_form(request, _INTROSPECT_PARAMS)
    token = form.get("token", "")
    if not token or len(token) > 8192:
        raise OAuthError("invalid_request", "token is required")
    await authenticate_client(request, gateway, form.get("client_id"), form.get("client_secret"))
    result = await gateway.introspector.introspect(gateway.keyring.current(), token)
    metrics.introspected(result)
    return JSONResponse(result, headers=NO_STORE)


@router.post(
    "/revoke",
    status_code=200,
    responses={
        200: {"description": "Revoked, or nothing to revoke (RFC 7009 §2.2)"},
        400: {"model": OAuthErrorResponse},
        401: {"model": OAuthErrorResponse},
    },
)
async def revoke(
    request: Request,
    gateway: GatewayDep,
    token: Annotated[str, Form(min_length=1, max_length=8192)],
    token_type_hint: Annotated[str | None, Form(max_length=64)] = None,
    client_id: Annotated[str | None, Form(max_length=128)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
) -> Response:
    """RFC 7009 token revocation for internal services: the token introspects inactive at once on
    every replica. Invalid, expired or foreign tokens get 200 too (§2.2): nothing to reveal."""
    await authenticate_client(request, gateway, client_id, client_secret)
    claims = verify(gateway.keyring.current(), gateway.token_policy, token)
    if claims is not None:
        async with unit_of_work(gateway.session_factory) as db:
            await revoke_token(db, claims["jti"], claims["exp"])
    return Response(status_code=200, headers=NO_STORE)


@router.get("/.well-known/jwks.json", responses={200: {"description": "RFC 7517 JWK Set"}})
async def jwks(gateway: GatewayDep) -> JSONResponse:
    """Public keys of the internal tokens: next, active and retired keys (tokens/keys.py)."""
    return JSONResponse(
        gateway.keyring.current().jwks,
        headers={"Cache-Control": f"public, max-age={gateway.settings.jwks_max_age}"},
        media_type="application/jwk-set+json",
    )


@router.get("/.well-known/oauth-authorization-server", responses={200: {"description": "RFC 8414 metadata"}})
async def metadata(gateway: GatewayDep) -> dict[str, Any]:
    """RFC 8414 §2 authorization server metadata for internal services."""
    issuer = gateway.settings.issuer
    client_auth = ["client_secret_basic", "client_secret_post"]
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{issuer}/introspect",
        "introspection_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint": f"{issuer}/revoke",
        "revocation_endpoint_auth_methods_supported": client_auth,
        # No OAuth grant is offered: tokens come from POST /token with the session cookie.
        "response_types_supported": [],
        "grant_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "access_token_signing_alg_values_supported": [gateway.settings.token_signing_alg],
        "service_documentation": f"{issuer}/docs",
    }


def served_first() -> list[FirstRoute]:
    """/introspect, every eTeacher service's question, served in front of the application's router
    (kit/first.py): it reads its form and authenticates its client by hand."""
    return [
        plain(route)
        for route in router.routes
        if isinstance(route, APIRoute) and route.endpoint is introspect
    ]
