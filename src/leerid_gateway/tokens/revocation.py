"""RFC 7009 revocation of single access tokens (sessions are revoked in sessions/service.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.db import utcnow
from leerid_gateway.tokens.models import RevokedToken


async def revoke_token(db: AsyncSession, jti: str, exp: int) -> None:
    """Remember the jti until the token would have expired anyway; idempotent."""
    if await db.get(RevokedToken, jti) is None:
        db.add(RevokedToken(jti=jti, expires_at=dt.datetime.fromtimestamp(exp, dt.UTC), revoked_at=utcnow()))
        await db.flush()


async def forget_expired(db: AsyncSession) -> int:
    """Revoked tokens that have expired need no remembering (called by the retention purge)."""
    result = await db.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
    return int(result.rowcount)  # type: ignore[attr-defined]
