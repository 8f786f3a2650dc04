"""Authenticating internal clients on /introspect, /revoke and /events (RFC 7662 §2.1,
RFC 7009 §2.1, RFC 6749 §2.3.1). Served from memory while the revocation listener is up."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from leerid_gateway.clients import service as clients
from leerid_gateway.deps import GatewayDep, client_address
from leerid_gateway.gateway import Gateway
from leerid_gateway.kit.errors import OAuthError

BASIC_CHALLENGE = 'Basic realm="leerid-gateway", charset="UTF-8"'
# Compared against when the client_id is unknown, so a wrong id costs the same as a wrong secret.
_DUMMY_HASH = b"\x00" * 32


def _unauthorized(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, status=401, www_authenticate=BASIC_CHALLENGE)


async def authenticate_client(
    request: Request, gateway: Gateway, client_id: str | None, client_secret: str | None
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
    address = client_address(request)
    limit = gateway.settings.rate_limit_client_auth_failures
    gateway.limiter.check_blocked("client-auth", address)
    if not client_id or client_secret is None:
        await gateway.limiter.hit("client-auth", address, limit)
        raise _unauthorized("client authentication required")
    client_key = client_id[:64]
    gateway.limiter.check_blocked("client-auth-id", client_key)
    state = await gateway.live.client(client_id) if len(client_id) <= 64 else None
    good = gateway.client_hasher.matches(client_secret, state.secret_hash if state else _DUMMY_HASH)
    if state is None or state.revoked or not good:
        # Only failures are counted (in the shared database), so guessing is limited across all
        # replicas while a correct client's hot path costs nothing extra.
        await gateway.limiter.hit("client-auth", address, limit)
        await gateway.limiter.hit("client-auth-id", client_key, limit)
        raise _unauthorized("client authentication failed")
    return client_id


async def basic_client(request: Request, gateway: GatewayDep) -> str:
    """For GET endpoints: HTTP Basic only."""
    return await authenticate_client(request, gateway, None, None)


InternalClient = Annotated[str, Depends(basic_client)]
