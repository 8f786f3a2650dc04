"""db._Warm: the login's driver paths keep their pooled connection warm for the next statement, and
give it back to SQLAlchemy's pool whenever the pool's own rules would need it there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway import db
from leerid_gateway.db import (
    create_engine,
    driver_unit_of_work,
    fetchrow_autocommit,
    release_warm,
    rows,
    warm_idle,
)
from leerid_gateway.kit import metrics

_PID = text("SELECT pg_backend_pid()")


@pytest_asyncio.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine of its own (the shared one carries other tests' warm connections)."""
    made = create_engine(pg_url, pool_size=8)
    yield made
    release_warm(made)
    await made.dispose()


def _checkouts(engine: AsyncEngine) -> list[int]:
    """Counts the pool's checkouts (each one a trip through SQLAlchemy's pool)."""
    seen: list[int] = []
    event.listen(engine.sync_engine, "checkout", lambda *_args: seen.append(1))
    return seen


async def _pid(engine: AsyncEngine) -> int:
    row = await fetchrow_autocommit(engine, _PID, {})
    assert row is not None
    return int(row[0])


async def _pid_in_transaction(engine: AsyncEngine) -> int:
    async with driver_unit_of_work(engine) as transaction:
        return int((await rows(transaction, _PID, {}))[0][0])


def _pool(engine: AsyncEngine) -> Any:
    return engine.sync_engine.pool


async def _terminate(engine: AsyncEngine, pid: int) -> None:
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def test_the_next_statement_runs_on_the_warm_connection_without_the_pool(engine: AsyncEngine) -> None:
    checkouts = _checkouts(engine)
    first = await _pid(engine)
    assert (len(checkouts), warm_idle(engine), _pool(engine).checkedout()) == (1, 1, 1)
    assert await _pid_in_transaction(engine) == first  # the admission's path takes it too
    assert await _pid(engine) == first
    assert len(checkouts) == 1
    assert warm_idle(engine) == 1


async def test_a_warm_connection_counts_as_idle_not_in_use(engine: AsyncEngine) -> None:
    await _pid(engine)
    metrics.observe_pool(_pool(engine), warm_idle(engine))
    in_use = metrics.DB_POOL.labels(state="in_use")._value.get()
    idle = metrics.DB_POOL.labels(state="idle")._value.get()
    assert (in_use, idle) == (0, 1)


async def test_a_connection_goes_back_to_the_pool_after_waiting_idle(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "WARM_IDLE_SECONDS", 0.05)
    await _pid(engine)
    assert warm_idle(engine) == 1
    await asyncio.sleep(0.3)
    assert (warm_idle(engine), _pool(engine).checkedout(), _pool(engine).checkedin()) == (0, 0, 1)


async def test_a_connection_goes_back_through_the_pool_when_it_is_old(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that the pool's checkout applies pool_recycle and SQLAlchemy's pool-wide invalidations."""
    checkouts = _checkouts(engine)
    await _pid(engine)
    monkeypatch.setattr(db, "WARM_MAX_AGE_SECONDS", 0.05)
    await asyncio.sleep(0.1)
    await _pid(engine)
    assert len(checkouts) == 2
    assert (warm_idle(engine), _pool(engine).checkedout()) == (1, 1)  # the fresh one


async def test_at_most_warm_max_wait_and_the_rest_go_back(engine: AsyncEngine) -> None:
    async def held() -> int:
        async with driver_unit_of_work(engine) as transaction:
            await rows(transaction, text("SELECT pg_sleep(0.05)"), {})
            return int((await rows(transaction, _PID, {}))[0][0])

    pids = await asyncio.gather(*(held() for _ in range(7)))
    assert len(set(pids)) == 7
    assert warm_idle(engine) == db.WARM_MAX
    assert (_pool(engine).checkedout(), _pool(engine).checkedin()) == (db.WARM_MAX, 7 - db.WARM_MAX)


async def test_a_warm_connection_the_server_closed_is_not_used(engine: AsyncEngine) -> None:
    first = await _pid(engine)
    await _terminate(engine, first)
    await asyncio.sleep(0.1)  # asyncpg reads the server's close off the idle socket
    second = await _pid(engine)
    assert second != first


async def test_a_lost_connection_sends_every_older_one_back_through_the_pool(engine: AsyncEngine) -> None:
    """As SQLAlchemy invalidates every connection made before a disconnect, none of the warm ones
    made before it is used again: the pool's checkout replaces them."""

    async def held() -> int:
        async with driver_unit_of_work(engine) as transaction:
            await rows(transaction, text("SELECT pg_sleep(0.05)"), {})
            return int((await rows(transaction, _PID, {}))[0][0])

    older = set(await asyncio.gather(*(held() for _ in range(3))))
    assert warm_idle(engine) == 3
    with pytest.raises(DBAPIError):
        async with driver_unit_of_work(engine) as transaction:
            pid = int((await rows(transaction, _PID, {}))[0][0])
            await _terminate(engine, pid)
            for _ in range(50):  # until the driver sees the server's close
                await rows(transaction, text("SELECT 1"), {})
                await asyncio.sleep(0.02)
    assert warm_idle(engine) == 0
    assert await _pid(engine) not in older | {pid}


async def test_a_failed_statement_costs_its_connection(engine: AsyncEngine) -> None:
    first = await _pid(engine)
    with pytest.raises(asyncpg.DivisionByZeroError):  # the driver's own error, as before
        await fetchrow_autocommit(engine, text("SELECT 1 / 0"), {})
    assert warm_idle(engine) == 0
    assert await _pid(engine) != first  # its state was not known: discarded, not kept


async def test_a_rolled_back_transaction_leaves_its_connection_warm_and_clean(engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError):
        async with driver_unit_of_work(engine) as transaction:
            first = int((await rows(transaction, _PID, {}))[0][0])
            raise RuntimeError("the work failed")
    assert warm_idle(engine) == 1
    async with driver_unit_of_work(engine) as transaction:
        assert int((await rows(transaction, _PID, {}))[0][0]) == first
        assert transaction.driver.is_in_transaction()  # its own, new transaction


async def test_dispose_leaves_nothing_checked_out_with_or_without_release(pg_url: str) -> None:
    for released in (True, False):
        engine = create_engine(pg_url, pool_size=2)
        await _pid(engine)
        driver = db._WARM[engine.sync_engine]._idle[0][1].pooled.driver_connection
        if released:
            release_warm(engine)
            assert (warm_idle(engine), _pool(engine).checkedin()) == (0, 1)
        await engine.dispose()
        assert warm_idle(engine) == 0
        assert driver.is_closed()  # closed by the pool's dispose, or by the keeper's own
        await _pid(engine)  # the new pool serves, and is kept warm from
        assert warm_idle(engine) == 1
        release_warm(engine)
        await engine.dispose()


async def test_the_pools_last_connection_is_never_kept_from_the_others(pg_url: str) -> None:
    """A Session (or /readyz's probe) must never wait for a connection that sits warm: one that would
    leave the pool with none to give, idle or yet to be made, goes back at once."""
    engine = create_engine(pg_url, pool_size=2)
    try:
        async with engine.connect() as busy:
            await busy.execute(text("SELECT 1"))  # one of the two at work
            await _pid(engine)  # the other: the pool's last
            assert warm_idle(engine) == 0
            async with asyncio.timeout(1), engine.connect() as other:  # at once, not after a sweep
                await other.execute(text("SELECT 1"))
        await _pid(engine)  # with one to spare, it is kept
        assert warm_idle(engine) == 1
    finally:
        release_warm(engine)
        await engine.dispose()


async def test_a_connection_of_a_disposed_pool_is_not_kept(engine: AsyncEngine) -> None:
    """In use while the engine is disposed of (and another statement then leased from the new pool):
    given back, it goes to its own pool, never into the new pool's warm ones."""
    started, finish = asyncio.Event(), asyncio.Event()

    async def in_flight() -> int:
        async with driver_unit_of_work(engine) as transaction:
            pid = int((await rows(transaction, _PID, {}))[0][0])
            started.set()
            await finish.wait()
            return pid

    task = asyncio.create_task(in_flight())
    await started.wait()
    await engine.dispose()
    fresh = await _pid(engine)  # the new pool's, kept warm
    finish.set()
    old = await task
    assert warm_idle(engine) == 1
    assert await _pid(engine) == fresh != old
