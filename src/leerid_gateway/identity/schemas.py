"""The event feed eTeacher follows (docs/identity.md, "Events")."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

EventType = Literal["identity.created", "identity.identified", "identity.merged", "identity.deleted"]


class Event(BaseModel):
    id: int = Field(description="Monotonic cursor; also the idempotency key.")
    type: EventType
    sub: str = Field(description="The identity the event is about (for merged: the survivor).")
    data: dict[str, Any] = Field(
        description='merged: {"from": sub, "into": sub}; created: {"temporary": bool}'
    )
    created_at: dt.datetime


class EventPage(BaseModel):
    events: list[Event]
    next_cursor: int = Field(description="Pass as `after` to get the next page (unchanged when empty).")
