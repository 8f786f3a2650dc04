"""db.connection(): one connection per transaction, asked for once; a new transaction gets its own."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import connection, create_session_factory


async def test_the_connection_is_reused_within_a_transaction_and_renewed_after_it(db: AsyncEngine) -> None:
    async with create_session_factory(db)() as session:
        async with session.begin():
            first = await connection(session)
            assert await connection(session) is first
            assert (await first.execute(text("SELECT 1"))).scalar() == 1
        async with session.begin():
            second = await connection(session)
            assert second is not first
            assert (await second.execute(text("SELECT 2"))).scalar() == 2
