"""db.driver_unit_of_work(): a transaction straight on a pooled asyncpg connection, for the login's
admission; and in_retried_transaction(on_driver=True), which runs there first and in a Session when
the work needs one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from leerid_gateway.db import (
    DriverTransaction,
    NeedsSession,
    create_session_factory,
    driver_transactions,
    driver_unit_of_work,
    orm,
    rows,
    unit_of_work,
    warm_idle,
)
from leerid_gateway.identity.models import Identity
from leerid_gateway.identity.service import in_retried_transaction
from tests.identity import login, profile, read_state
from tests.test_db_rows import _identity

_NEW_IDENTITY = insert(Identity).returning(Identity.id)
_PID = text("SELECT pg_backend_pid()")


def _in_use(engine: AsyncEngine) -> int:
    """Connections checked out of the pool and at work: not those kept warm for the next statement."""
    return int(engine.sync_engine.pool.checkedout()) - warm_idle(engine)  # type: ignore[attr-defined]


async def _killed(engine: AsyncEngine, transaction: DriverTransaction) -> int:
    """Terminate the transaction's backend from another connection; its pid."""
    pid: int = (await rows(transaction, _PID, {}))[0][0]
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    return pid


async def _leer_ids(engine: AsyncEngine) -> list[str | None]:
    async with unit_of_work(create_session_factory(engine)) as session:
        return list(await session.scalars(select(Identity.leer_id_uuid).order_by(Identity.id)))


@contextmanager
def sessions_begun() -> Iterator[list[object]]:
    """Every SQLAlchemy Session that began a transaction meanwhile."""
    begun: list[object] = []

    def note(session: object, *_args: object) -> None:
        begun.append(session)

    event.listen(Session, "after_begin", note)
    try:
        yield begun
    finally:
        event.remove(Session, "after_begin", note)


async def test_it_commits_at_the_end_and_rolls_back_on_an_exception(pg: AsyncEngine) -> None:
    async with driver_unit_of_work(pg) as transaction:
        await rows(transaction, _NEW_IDENTITY, _identity("kept"))
        assert transaction.driver.is_in_transaction()
    with pytest.raises(RuntimeError, match="undo"):
        async with driver_unit_of_work(pg) as transaction:
            await rows(transaction, _NEW_IDENTITY, _identity("undone"))
            raise RuntimeError("undo")
    assert await _leer_ids(pg) == ["kept"]
    async with driver_unit_of_work(pg) as transaction:  # back in the pool with no transaction open
        assert (await rows(transaction, text("SELECT count(*) FROM identities"), {}))[0][0] == 1


async def test_a_database_error_is_sqlalchemys_and_the_connection_stays_usable(pg: AsyncEngine) -> None:
    """The reconciliation's retry reads the SQLSTATE; no value of the row is in the message."""
    with pytest.raises(IntegrityError) as raised:
        async with driver_unit_of_work(pg) as transaction:
            driver = transaction.driver
            await rows(transaction, _NEW_IDENTITY, _identity("leer-id-of-a-pupil"))
            await rows(transaction, _NEW_IDENTITY, _identity("leer-id-of-a-pupil"))
    assert raised.value.orig.sqlstate == "23505"  # type: ignore[union-attr]
    assert "leer-id-of-a-pupil" not in str(raised.value)
    assert await _leer_ids(pg) == []
    # Rolled back cleanly: the connection went back to the pool open, with no transaction.
    assert not driver.is_closed() and not driver.is_in_transaction()


async def test_a_cancelled_statement_costs_its_connection_not_the_next_transaction(pg: AsyncEngine) -> None:
    """Cancelled mid-statement (a client gone, a timeout): asyncpg cancels the statement on the server
    and the rollback ends the transaction, so the connection goes back to the pool idle (or, had the
    rollback failed, is discarded); nothing of the transaction stays, nothing is left checked out."""
    drivers: list[Any] = []

    async def slow() -> None:
        async with driver_unit_of_work(pg) as transaction:
            drivers.append(transaction.driver)
            await rows(transaction, _NEW_IDENTITY, _identity("never-committed"))
            await rows(transaction, text("SELECT pg_sleep(5)"), {})

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slow(), 0.3)
    assert drivers[0].is_closed() or not drivers[0].is_in_transaction()
    assert _in_use(pg) == 0
    for _ in range(3):  # whichever pooled connection comes next is inside nothing
        async with driver_unit_of_work(pg) as transaction:
            assert (await rows(transaction, text("SELECT count(*) FROM identities"), {}))[0][0] == 0
    assert await _leer_ids(pg) == []


async def test_a_lost_connection_is_a_dbapi_error_and_the_pool_recovers(pg: AsyncEngine) -> None:
    with pytest.raises(DBAPIError):
        async with driver_unit_of_work(pg) as transaction:
            pid = await _killed(pg, transaction)
            for _ in range(50):  # until the driver sees the server's close
                await rows(transaction, text("SELECT 1"), {})
                await asyncio.sleep(0.02)
    assert _in_use(pg) == 0
    async with driver_unit_of_work(pg) as transaction:
        assert (await rows(transaction, _PID, {}))[0][0] != pid


async def test_orm_work_on_the_driver_is_refused(pg: AsyncEngine) -> None:
    async with driver_unit_of_work(pg) as transaction:
        with pytest.raises(NeedsSession):
            orm(transaction)


async def test_a_returning_pupils_reconciliation_needs_no_session(pg: AsyncEngine) -> None:
    """The first login creates the identity: events and aliases are the Session's work, so it runs
    again in one (and is stored once). The next logins of the same pupil need none."""
    pupil = profile("account-1", "leer-1")
    with sessions_begun() as begun:
        first = await login(pg, pupil)
    assert first.created and len(begun) == 1
    with sessions_begun() as begun:
        again = await login(pg, profile("account-1", "leer-1", given="Anna"))
    assert begun == [] and not again.created and again.identity.sub == first.identity.sub
    state = await read_state(pg)
    assert [i.given_name for i in state.identities.values()] == ["Anna"]
    assert [e.type for e in state.events] == ["identity.created"]  # once, not once per attempt
    # A new account of the same pupil: an alias to claim, so in a Session again.
    with sessions_begun() as begun:
        await login(pg, profile("account-2", "leer-1", history=("account-1",)))
    assert len(begun) == 1
    sub = first.identity.sub
    assert (await read_state(pg)).aliases == {"account-1": sub, "account-2": sub}


async def test_with_statements_watched_everything_runs_in_a_session(pg: AsyncEngine) -> None:
    """Tracing listens to every statement; the driver would hide them from it."""

    def watch(*_args: object) -> None:
        return None

    await login(pg, profile("account-1", "leer-1"))
    event.listen(pg.sync_engine, "before_cursor_execute", watch)
    try:
        assert not driver_transactions(pg)
        with sessions_begun() as begun:
            await login(pg, profile("account-1", "leer-1"))
        assert len(begun) == 1
    finally:
        event.remove(pg.sync_engine, "before_cursor_execute", watch)
    assert driver_transactions(pg)


async def test_needs_session_outside_the_driver_is_not_swallowed(db: AsyncEngine) -> None:
    """Raised in a Session's transaction it is a bug, not a reason to run the work again."""
    calls: list[type] = []

    async def work(session: Any) -> None:
        calls.append(type(session))
        orm(session)  # NeedsSession on the driver: run again in a Session
        raise NeedsSession  # in a Session: a bug

    with pytest.raises(NeedsSession):
        await in_retried_transaction(create_session_factory(db), work, on_driver=True)
    assert calls[-1] is not DriverTransaction and len(calls) == (2 if driver_transactions(db) else 1)


async def test_a_commit_the_server_refuses_is_sqlalchemys_and_keeps_the_connection(pg: AsyncEngine) -> None:
    """A deferred constraint fails at COMMIT: an IntegrityError with its SQLSTATE; the server ended
    the transaction, so the connection goes back to the pool as it is."""
    with pytest.raises(IntegrityError) as raised:
        async with driver_unit_of_work(pg) as transaction:
            driver = transaction.driver
            await rows(
                transaction,
                text("CREATE TEMP TABLE once (x int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP"),
                {},
            )
            await rows(transaction, text("INSERT INTO once VALUES (1), (1)"), {})
    assert raised.value.orig.sqlstate == "23505"  # type: ignore[union-attr]
    assert not driver.is_closed() and not driver.is_in_transaction()


async def test_a_connection_lost_before_commit_is_a_dbapi_error(pg: AsyncEngine) -> None:
    with pytest.raises(DBAPIError):
        async with driver_unit_of_work(pg) as transaction:
            await rows(transaction, _NEW_IDENTITY, _identity("lost-at-commit"))
            await _killed(pg, transaction)
    assert _in_use(pg) == 0
    assert await _leer_ids(pg) == []


async def test_a_connection_lost_mid_statement_retires_the_older_pooled_ones(pg: AsyncEngine) -> None:
    """As SQLAlchemy does on a disconnect: the server may have restarted, so every connection made
    before the failure is replaced at its next checkout (the pool hands them out oldest first)."""
    async with driver_unit_of_work(pg) as first, driver_unit_of_work(pg) as second:
        older = {first.driver, second.driver}
    with pytest.raises(DBAPIError):
        async with driver_unit_of_work(pg) as transaction:
            await _killed(pg, transaction)
            await rows(transaction, text("SELECT pg_sleep(1)"), {})
    async with driver_unit_of_work(pg) as first, driver_unit_of_work(pg) as second:
        assert not {first.driver, second.driver} & older
