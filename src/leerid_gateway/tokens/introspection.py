"""RFC 7662 token introspection for internal services."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.db import utcnow
from leerid_gateway.identity.models import Identity
from leerid_gateway.sessions.models import BrowserSession
from leerid_gateway.sessions.service import SessionPolicy
from leerid_gateway.tokens.keys import LoadedKeys
from leerid_gateway.tokens.schemas import IntrospectionResponse
from leerid_gateway.tokens.service import TokenPolicy, verify

INACTIVE = IntrospectionResponse(active=False)


async def introspect(
    db: AsyncSession, keys: LoadedKeys, policy: TokenPolicy, sessions: SessionPolicy, token: str
) -> IntrospectionResponse:
    """RFC 7662 §2.2: active only if signed by us, unexpired, and its session and subject still
    live (not logged out, merged away, refused or deleted). Otherwise ``{"active": false}`` only."""
    claims = verify(keys, policy, token)
    if claims is None:
        return INACTIVE
    try:
        sub = uuid.UUID(claims["sub"])
    except ValueError:
        return INACTIVE
    row = (
        await db.execute(
            select(BrowserSession.revoked_at, BrowserSession.absolute_expires_at, BrowserSession.last_seen_at)
            .join(Identity, Identity.id == BrowserSession.identity_id)
            .where(BrowserSession.id == claims["sid"], Identity.sub == sub)
        )
    ).first()
    if row is None:
        return INACTIVE
    revoked_at, absolute_expires_at, last_seen_at = row
    now = utcnow()
    if revoked_at is not None or absolute_expires_at <= now or last_seen_at + sessions.idle <= now:
        return INACTIVE
    return IntrospectionResponse(
        active=True,
        client_id=claims.get("client_id"),
        token_type="Bearer",  # noqa: S106 (RFC 7662 §2.2 token type)
        exp=claims["exp"],
        iat=claims.get("iat"),
        sub=claims["sub"],
        aud=claims["aud"],
        iss=claims["iss"],
        jti=claims.get("jti"),
        sid=claims["sid"],
    )
