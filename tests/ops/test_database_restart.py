"""A database restart or failover closes every pooled connection; the next request must not fail.

``db.create_engine`` replaces a closed pooled connection at checkout without a ping round trip
(``_closed_connections_are_replaced``). The control case shows the same scenario failing on an
engine without that check, so the test can tell the two apart.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from leerid_gateway.db import create_engine, create_session_factory, unit_of_work


async def _pids_of_pool(engine: AsyncEngine, size: int) -> set[int]:
    """Open ``size`` pooled connections at once and return their server pids."""
    gate = asyncio.Event()
    pids: set[int] = set()

    async def hold() -> None:
        async with engine.connect() as conn:
            pids.add(int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
            await gate.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(size)]
    while len(pids) < size:
        await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(*tasks)
    return pids


async def _terminate(admin: AsyncEngine, pids: set[int]) -> None:
    async with admin.connect() as conn:
        kill = text("SELECT pg_terminate_backend(p) FROM unnest(CAST(:p AS int[])) AS p")
        await conn.execute(kill, {"p": list(pids)})
    await asyncio.sleep(0.2)  # the pooled sockets see the server's close


async def test_closed_connections_are_replaced_at_checkout(pg_url: str, pg: AsyncEngine) -> None:
    engine = create_engine(pg_url, pool_size=2)
    try:
        before = await _pids_of_pool(engine, 2)
        await _terminate(pg, before)
        factory = create_session_factory(engine)
        for _ in range(4):  # every pooled connection is dead; each checkout must get a live one
            async with unit_of_work(factory) as session:
                pid = int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            assert pid not in before
    finally:
        await engine.dispose()


async def test_control_without_the_check_the_first_request_fails(pg_url: str, pg: AsyncEngine) -> None:
    engine = create_async_engine(pg_url, pool_size=2, max_overflow=0)
    try:
        before = await _pids_of_pool(engine, 2)
        await _terminate(pg, before)
        with pytest.raises(DBAPIError):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
