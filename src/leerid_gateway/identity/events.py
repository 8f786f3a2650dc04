"""The identity event outbox: written in the caller's transaction, read in order by eTeacher."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.identity.models import IdentityEvent

CREATED = "identity.created"
IDENTIFIED = "identity.identified"
MERGED = "identity.merged"
DELETED = "identity.deleted"

# Any constant; the lock only orders event writers (see emit()).
_EVENT_LOCK_KEY = 0x1EE51D_0E


async def emit(session: AsyncSession, type_: str, sub: uuid.UUID, data: dict[str, Any] | None = None) -> None:
    """Append an event in the current transaction.

    On PostgreSQL the cursor is a sequence, and sequence values are handed out before commit, so
    two transactions could commit ids 6 then 5 and a reader at ``after=5`` would skip 6… or 5. A
    transaction-level advisory lock taken before the insert makes event-writing transactions
    commit in id order, so a consumer's cursor never jumps over an event that commits later.
    SQLite has a single writer, which gives the same guarantee.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _EVENT_LOCK_KEY})
    session.add(IdentityEvent(type=type_, sub=sub, data=data or {}))
