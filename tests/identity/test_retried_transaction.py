"""in_retried_transaction: runs again only what a race can cure, and refuses to be nested."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leerid_gateway.db import create_session_factory
from leerid_gateway.identity.models import AccountAlias, Identity
from leerid_gateway.identity.service import in_retried_transaction, lock_keys, reconcile
from tests.identity import login, profile, read_state


async def test_bad_data_is_not_retried(db: AsyncEngine) -> None:
    """A not-null violation is not a race: it fails at once, not eight times."""
    attempts = 0

    async def work(session: AsyncSession) -> None:
        nonlocal attempts
        attempts += 1
        now = dt.datetime.now(dt.UTC)
        await session.execute(
            insert(Identity).values(
                sub=uuid.uuid4(), given_name=None, family_name="X", created_at=now, last_login_at=now
            )
        )

    with pytest.raises(IntegrityError):
        await in_retried_transaction(create_session_factory(db), work)
    assert attempts == 1


async def test_nesting_is_refused(db: AsyncEngine) -> None:
    factory = create_session_factory(db)

    async def inner(_session: AsyncSession) -> None:
        return None

    async def outer(_session: AsyncSession) -> None:
        await in_retried_transaction(factory, inner)

    with pytest.raises(RuntimeError, match="nested"):
        await in_retried_transaction(factory, outer)
    await in_retried_transaction(factory, inner)  # the guard is released afterwards


async def test_a_unique_violation_past_the_locks_is_retried_from_a_fresh_read(
    pg: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """The last line of defence: a writer that takes no advisory lock (a hole in the locking) inserts
    the same leer_id_uuid while a login reconciles. The login's INSERT waits for that row, fails with
    a unique violation (raised on the driver path, db.rows) once it commits, and the login runs again
    and finds that pupil instead of failing."""
    now = dt.datetime.now(dt.UTC)
    sub = uuid.uuid4()
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with pg.connect() as intruder, pg.connect() as observer:
        await observer.execution_options(isolation_level="AUTOCOMMIT")
        async with intruder.begin():
            values = {"sub": sub, "leer_id_uuid": "leer-race", "given_name": "A", "family_name": "B"}
            await intruder.execute(insert(Identity).values(**values, created_at=now, last_login_at=now))
            racing = asyncio.create_task(login(pg, profile("account-race", "leer-race")))
            async with asyncio.timeout(10):  # until the login's INSERT waits for the intruder's row
                while not (await observer.execute(waiting)).scalar():
                    await asyncio.sleep(0.01)
        outcome = await asyncio.wait_for(racing, 10)
    assert outcome.identity.sub == sub and not outcome.created
    assert "reconciliation retried after 23505" in caplog.text
    state = await read_state(pg)
    assert list(state.identities) == [sub] and state.aliases == {"account-race": sub}


async def test_a_login_that_waited_for_its_keys_reads_what_the_holder_committed(
    pg: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """The locks and the read are one call (migration 0009), and the read must still see the database
    as it is once the locks are granted: a login that waits for a key finds the identity the holder
    of that key committed meanwhile. Were the read part of the statement that waited, it would see
    the database as of before the wait, create a second identity, and hit the unique constraint."""
    now = dt.datetime.now(dt.UTC)
    sub = uuid.uuid4()
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    factory = create_session_factory(pg)
    async with pg.connect() as observer:
        await observer.execution_options(isolation_level="AUTOCOMMIT")
        async with factory() as holder, holder.begin():
            await lock_keys(holder, ["account:account-wait", "leer_id:leer-wait"])
            values = {"sub": sub, "leer_id_uuid": "leer-wait", "given_name": "A", "family_name": "B"}
            identity_id = (
                await holder.execute(
                    insert(Identity)
                    .values(**values, created_at=now, last_login_at=now)
                    .returning(Identity.id)
                )
            ).scalar_one()
            await holder.execute(
                insert(AccountAlias).values(
                    account_uuid="account-wait", identity_id=identity_id, created_at=now
                )
            )
            # In a Session: on the driver, a login that finds nobody runs again in a Session anyway.
            pupil = profile("account-wait", "leer-wait")
            racing = asyncio.create_task(in_retried_transaction(factory, lambda db: reconcile(db, pupil)))
            async with asyncio.timeout(10):  # until the login waits for the holder's lock
                while not (await observer.execute(waiting)).scalar():
                    await asyncio.sleep(0.01)
        outcome = await asyncio.wait_for(racing, 10)
    assert outcome.identity.sub == sub and not outcome.created
    assert "reconciliation retried" not in caplog.text
    state = await read_state(pg)
    assert list(state.identities) == [sub] and state.aliases == {"account-wait": sub}
