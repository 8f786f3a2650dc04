"""db.connection(): one connection per transaction, asked for once; a new transaction gets its own.
db.fetchrow_autocommit(): one statement straight on the driver."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import connection, create_session_factory, fetchrow_autocommit


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


async def test_fetchrow_autocommit_runs_one_statement_on_its_own(engines: dict[str, AsyncEngine]) -> None:
    """db.fetchrow_autocommit: the row SQLAlchemy's own execution would return, committed at once."""
    engine = engines["postgres"]
    insert = text(
        'INSERT INTO rate_limits (key, "window", count) VALUES (:key, :window, 1) '
        'ON CONFLICT (key, "window") DO UPDATE SET count = rate_limits.count + 1 RETURNING count, key'
    )
    key = "test:autocommit"
    assert await fetchrow_autocommit(engine, insert, {"key": key, "window": 1}) == (1, key)
    assert await fetchrow_autocommit(engine, insert, {"key": key, "window": 1}) == (2, key)
    async with engine.connect() as other:  # committed: another connection sees it
        found = await other.execute(text("SELECT count FROM rate_limits WHERE key = :k"), {"k": key})
        count = found.scalar()
    assert count == 2
    nothing = text("SELECT count FROM rate_limits WHERE key = :key")
    assert await fetchrow_autocommit(engine, nothing, {"key": "test:none"}) is None


async def test_fetchrow_autocommit_discards_a_connection_whose_statement_failed(
    engines: dict[str, AsyncEngine],
) -> None:
    engine = engines["postgres"]
    failing = text("DO $$ BEGIN RAISE EXCEPTION 'backend %', pg_backend_pid(); END $$")
    with pytest.raises(asyncpg.RaiseError) as raised:
        await fetchrow_autocommit(engine, failing, {})
    backend = int(str(raised.value).split()[-1])
    async with asyncio.timeout(5):  # that connection was closed, not given back to the pool
        while await fetchrow_autocommit(
            engine, text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend}
        ):
            await asyncio.sleep(0.02)
    slow = text("SELECT pg_sleep(:s)")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await fetchrow_autocommit(engine, slow, {"s": 5})
    # Neither connection went back to the pool in an unknown state: the pool's next ones just work
    # (one still busy with the cancelled statement would answer "another operation is in progress").
    for _ in range(12):
        assert await fetchrow_autocommit(engine, text("SELECT 1"), {}) == (1,)
