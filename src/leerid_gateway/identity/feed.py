"""Reading the identity event outbox in cursor order."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.identity.models import IdentityEvent
from leerid_gateway.identity.schemas import Event, EventPage


async def page(db: AsyncSession, after: int, limit: int) -> EventPage:
    rows = await db.scalars(
        select(IdentityEvent).where(IdentityEvent.id > after).order_by(IdentityEvent.id).limit(limit)
    )
    events = [Event(id=e.id, type=e.type, sub=str(e.sub), data=e.data, created_at=e.created_at) for e in rows]
    return EventPage(events=events, next_cursor=events[-1].id if events else after)
