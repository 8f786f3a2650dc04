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
from leerid_gateway.identity.models import Identity
from leerid_gateway.identity.service import in_retried_transaction
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
