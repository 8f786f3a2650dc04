"""db.connection(): one connection per transaction, asked for once; a new transaction gets its own.
db.fetchrow_autocommit(): one statement straight on the driver."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import connection, create_engine, create_session_factory, fetchrow_autocommit


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


async def test_fetchrow_autocommit_goes_through_sqlalchemy_while_statements_are_watched(
    engines: dict[str, AsyncEngine],
) -> None:
    """A listener on the engine's statements (OpenTelemetry's, when tracing is on) sees this one too."""
    engine = engines["postgres"]
    seen: list[str] = []

    def watch(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", watch)
    try:
        assert await fetchrow_autocommit(engine, text("SELECT :x + 1"), {"x": 41}) == (42,)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", watch)
    assert len(seen) == 1 and seen[0].startswith("SELECT $1")
    assert await fetchrow_autocommit(engine, text("SELECT 1"), {}) == (1,)
    assert len(seen) == 1  # not listening any more: straight on the driver


async def test_a_dropped_connection_makes_the_pool_replace_its_older_connections(pg_url: str) -> None:
    """As SQLAlchemy does on a disconnect: the failure of one connection renews those made before it,
    so a failover (or a middlebox's silent drop) costs one failed login, not one per pooled connection."""
    engine = create_engine(pg_url, pool_size=3)
    backend_pid = text("SELECT pg_backend_pid()")
    try:

        async def pids() -> set[int]:
            held = [await engine.raw_connection() for _ in range(3)]
            try:
                return {await c.driver_connection.fetchval("SELECT pg_backend_pid()") for c in held}  # type: ignore[union-attr]
            finally:
                for c in held:
                    c.close()

        before = await pids()
        assert len(before) == 3
        sleeper = asyncio.create_task(fetchrow_autocommit(engine, text("SELECT pg_sleep(5)"), {}))
        await asyncio.sleep(0.3)
        terminate = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)'"
        )
        async with engine.connect() as other:
            await other.execute(text(terminate))
        with pytest.raises(asyncpg.PostgresConnectionError):
            await sleeper
        after = await pids()
        assert not after & before, "a connection from before the failure was kept"
        assert await fetchrow_autocommit(engine, backend_pid, {}) is not None
    finally:
        await engine.dispose()


def test_fetchrow_autocommit_refuses_typed_or_expanding_parameters(engines: dict[str, AsyncEngine]) -> None:
    from sqlalchemy import Integer, bindparam

    from leerid_gateway.db import _driver_sql

    typed = text("SELECT :n").bindparams(bindparam("n", type_=Integer))
    with pytest.raises(TypeError, match="untyped"):
        _driver_sql(engines["postgres"], typed)
