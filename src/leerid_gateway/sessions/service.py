"""Browser sessions: created at a successful callback, ended by logout, expiry, merge or refusal."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.db import Db, rows, utcnow
from leerid_gateway.identity.models import Identity
from leerid_gateway.kit.crypto import Hasher, random_token
from leerid_gateway.sessions.models import BrowserSession

# Writing last_seen_at on every request would turn every /token into a write; a minute of
# imprecision in the idle timeout is the price.
_TOUCH_EVERY = dt.timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: dt.timedelta
    absolute: dt.timedelta


@dataclass(frozen=True, slots=True)
class ActiveSession:
    sid: str
    identity: Identity
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session about to be written: the cookie value goes to the browser, only its HMAC is stored."""

    cookie: str
    sid: str
    secret_hash: bytes
    created_at: dt.datetime
    absolute_expires_at: dt.datetime

    def row(self, identity_id: int) -> dict[str, object]:
        return {
            "id": self.sid,
            "secret_hash": self.secret_hash,
            "identity_id": identity_id,
            "created_at": self.created_at,
            "last_seen_at": self.created_at,
            "absolute_expires_at": self.absolute_expires_at,
        }


def new(hasher: Hasher, policy: SessionPolicy) -> NewSession:
    now = utcnow()
    secret = random_token(32)
    return NewSession(secret, random_token(16), hasher.digest(secret), now, now + policy.absolute)


async def insert_new(db: Db, session: NewSession, identity_id: int) -> None:
    # Core, not session.add + flush: one INSERT without the unit-of-work machinery (login hot path).
    await rows(db, _INSERT, session.row(identity_id))


_INSERT = insert(BrowserSession)


async def resolve(
    db: AsyncSession, hasher: Hasher, policy: SessionPolicy, cookie: str
) -> ActiveSession | None:
    """The live session behind a cookie value, or None (unknown, revoked, idle or too old)."""
    if not cookie or len(cookie) > 100:
        return None
    now = utcnow()
    row = (
        await db.execute(
            select(BrowserSession, Identity)
            .join(Identity, Identity.id == BrowserSession.identity_id)
            .where(BrowserSession.secret_hash == hasher.digest(cookie))
        )
    ).first()
    if row is None:
        return None
    browser_session, identity = row
    if (
        browser_session.revoked_at is not None
        or browser_session.absolute_expires_at <= now
        or browser_session.last_seen_at + policy.idle <= now
    ):
        return None
    if now - browser_session.last_seen_at >= _TOUCH_EVERY:
        browser_session.last_seen_at = now
    expires_at = min(browser_session.absolute_expires_at, browser_session.last_seen_at + policy.idle)
    return ActiveSession(sid=browser_session.id, identity=identity, expires_at=expires_at)


async def revoke(db: AsyncSession, sid: str) -> bool:
    result = await db.execute(
        update(BrowserSession)
        .where(BrowserSession.id == sid, BrowserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_for_identity(db: AsyncSession, identity_id: int) -> int:
    result = await db.execute(
        update(BrowserSession)
        .where(BrowserSession.identity_id == identity_id, BrowserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
