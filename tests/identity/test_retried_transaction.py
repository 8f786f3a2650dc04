"""in_retried_transaction: runs again only what a race can cure, and refuses to be nested."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leerid_gateway.db import create_session_factory
from leerid_gateway.identity.models import Identity
from leerid_gateway.identity.service import in_retried_transaction


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
