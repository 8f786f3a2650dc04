"""GET /events: the identity changes eTeacher must follow (at-least-once, in cursor order)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from leerid_gateway.clients.auth import InternalClient
from leerid_gateway.deps import DbSession
from leerid_gateway.identity import feed
from leerid_gateway.identity.schemas import EventPage
from leerid_gateway.tokens.schemas import OAuthErrorResponse

router = APIRouter(tags=["events"])


@router.get("/events", response_model=EventPage, responses={401: {"model": OAuthErrorResponse}})
async def events(
    client: InternalClient,
    db: DbSession,
    after: Annotated[int, Query(ge=0, le=2**62, description="Cursor: the last event id you processed.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    """Identity events after the cursor (HTTP Basic with an internal client's credentials).

    Delivery is at-least-once: process each event idempotently by its `id`, then store the cursor.
    """
    result = await feed.page(db, after, limit)
    return JSONResponse(result.model_dump(mode="json"), headers={"Cache-Control": "no-store"})
