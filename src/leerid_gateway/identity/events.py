"""The identity event outbox: written in the caller's transaction, read in order by eTeacher."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.db import journal_lock
from leerid_gateway.identity.models import IdentityEvent

CREATED = "identity.created"
IDENTIFIED = "identity.identified"
MERGED = "identity.merged"
DELETED = "identity.deleted"


async def emit(session: AsyncSession, type_: str, sub: uuid.UUID, data: dict[str, Any] | None = None) -> None:
    """Append an event in the current transaction, in cursor order (see ``db.journal_lock``)."""
    await journal_lock(session)
    session.add(IdentityEvent(type=type_, sub=sub, data=data or {}))
