"""/token, /introspect, the JWKS and RFC 8414 metadata."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse

from leerid_gateway.clients.auth import authenticate_client
from leerid_gateway.deps import DbSession, GatewayDep
from leerid_gateway.kit.errors import ProblemError
from leerid_gateway.sessions import cookies
from leerid_gateway.sessions import service as sessions
from leerid_gateway.tokens import introspection
from leerid_gateway.tokens.keys import JWKS_MAX_AGE
from leerid_gateway.tokens.schemas import (
    AccessTokenResponse,
    IntrospectionResponse,
    OAuthErrorResponse,
)
from leerid_gateway.tokens.service import issue

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
    return JSONResponse(body.model_dump(), headers=NO_STORE)


@router.post(
    "/introspect",
    response_model=IntrospectionResponse,
    response_model_exclude_none=True,
    responses={400: {"model": OAuthErrorResponse}, 401: {"model": OAuthErrorResponse}},
)
async def introspect(
    request: Request,
    gateway: GatewayDep,
    db: DbSession,
    token: Annotated[str, Form(max_length=8192)],
    token_type_hint: Annotated[str | None, Form(max_length=64)] = None,
    client_id: Annotated[str | None, Form(max_length=128)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
) -> JSONResponse:
    """RFC 7662 token introspection for internal services (client authentication required)."""
    await authenticate_client(request, gateway, db, client_id, client_secret)
    keys = gateway.keyring.current()
    result = await introspection.introspect(
        db, keys, gateway.token_policy, gateway.relying_party.session_policy, token
    )
    return JSONResponse(result.model_dump(exclude_none=True), headers=NO_STORE)


@router.get("/.well-known/jwks.json", responses={200: {"description": "RFC 7517 JWK Set"}})
async def jwks(gateway: GatewayDep) -> JSONResponse:
    """Public keys of the internal tokens (next, active and retired keys)."""
    keys = gateway.keyring.current()
    return JSONResponse(
        keys.jwks,
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
        media_type="application/jwk-set+json",
    )


@router.get("/.well-known/oauth-authorization-server", responses={200: {"description": "RFC 8414 metadata"}})
async def metadata(gateway: GatewayDep) -> dict[str, Any]:
    """RFC 8414 §2 authorization server metadata for internal services."""
    issuer = gateway.settings.issuer
    keys = gateway.keyring.current()
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{issuer}/introspect",
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "grant_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "access_token_signing_alg_values_supported": sorted({keys.active_alg}),
        "service_documentation": f"{issuer}/docs",
    }
