"""FastAPI dependencies as ``Annotated`` aliases, so route signatures read like sentences."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.gateway import Gateway
from leerid_gateway.settings import Settings


# These are `async def` although they do no I/O: FastAPI runs a plain `def` dependency in a worker
# thread, which costs more than the whole of a cached /introspect (docs/performance.md).
async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_settings(request: Request) -> Settings:
    gateway: Gateway = request.app.state.gateway
    return gateway.settings


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request that needs one: commit on success, roll back on error.

    Used with ``scope="function"``: the commit happens *before* the response is sent, so a failed
    commit becomes an error response instead of a lost write behind a 200.
    """
    gateway: Gateway = request.app.state.gateway
    async with gateway.session_factory() as db, db.begin():
        yield db


async def get_request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def client_address(request: Request) -> str:
    """The client's address as uvicorn reports it (X-Forwarded-For only from trusted proxies)."""
    return request.client.host if request.client else "unknown"


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DbSession = Annotated[AsyncSession, Depends(get_db, scope="function")]
RequestId = Annotated[str | None, Depends(get_request_id)]
