"""Authenticating internal clients on /introspect and /events (RFC 7662 §2.1, RFC 6749 §2.3.1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.clients import service as clients
from leerid_gateway.deps import DbSession, GatewayDep
from leerid_gateway.gateway import Gateway
from leerid_gateway.kit.errors import OAuthError

BASIC_CHALLENGE = 'Basic realm="leerid-gateway", charset="UTF-8"'


def _unauthorized(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, status=401, www_authenticate=BASIC_CHALLENGE)


async def authenticate_client(
    request: Request, gateway: Gateway, db: AsyncSession, client_id: str | None, client_secret: str | None
) -> str:
    """HTTP Basic or form fields, exactly one of them (RFC 6749 §2.3: never two methods)."""
    header = request.headers.get("authorization")
    if header is not None and (client_id is not None or client_secret is not None):
        raise OAuthError("invalid_request", "use one client authentication method, not two")
    if header is not None:
        parsed = clients.parse_basic(header)
        if parsed is None:
            raise _unauthorized("malformed Basic credentials")
        client_id, client_secret = parsed
    if not client_id or client_secret is None:
        raise _unauthorized("client authentication required")
    client = await clients.authenticate(db, gateway.client_hasher, client_id, client_secret)
    if client is None:
        raise _unauthorized("client authentication failed")
    return client.client_id


async def basic_client(request: Request, gateway: GatewayDep, db: DbSession) -> str:
    """For GET endpoints: HTTP Basic only."""
    return await authenticate_client(request, gateway, db, None, None)


InternalClient = Annotated[str, Depends(basic_client)]
