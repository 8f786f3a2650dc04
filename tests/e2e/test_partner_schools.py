"""Partner schools change while the gateway runs: the very next logins follow (protocol art. 3)."""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.access import service as access
from leerid_gateway.db import create_session_factory, unit_of_work
from leerid_gateway.demo.provider import PARTNER_SCHOOL_CODE
from tests.e2e.conftest import World


async def _set_partner(db: AsyncEngine, present: bool) -> None:
    async with unit_of_work(create_session_factory(db)) as session:
        if present:
            await access.add(session, PARTNER_SCHOOL_CODE, "Sint-Jozefscollege (demo)")
        else:
            await access.remove(session, PARTNER_SCHOOL_CODE)


def _listening(world: World) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(f"{world.url}/readyz").json()["info"]["revocation_listener"] != "listening":
        assert time.monotonic() < deadline, "the gateway's LISTEN connection did not come up"
        time.sleep(0.05)


def _status_within_a_second(world: World, expected: int) -> float:
    started = time.monotonic()
    while True:
        world.browser.http.cookies.clear()
        status = world.login("lotte").status_code
        if status == expected:
            return time.monotonic() - started
        assert time.monotonic() - started < 1.0, f"still {status} after 1 s"


async def test_a_partner_school_removed_or_added_counts_from_the_next_logins(world: World) -> None:
    """Protocol art. 3: a school that stops being a partner means no access, on every replica at
    once; one that becomes a partner lets its pupils in. On PostgreSQL the replica's list is kept
    in memory and NOTIFY (migration 0006) keeps it exact; on SQLite every login reads the table."""
    if world.settings.database_url.startswith("postgresql"):
        await asyncio.to_thread(_listening, world)
    assert world.login("lotte").status_code == 303  # on PostgreSQL the list is in memory now
    try:
        await _set_partner(world.db, present=False)
        assert await asyncio.to_thread(_status_within_a_second, world, 403) < 1.0
        await _set_partner(world.db, present=True)
        assert await asyncio.to_thread(_status_within_a_second, world, 303) < 1.0
    finally:
        await _set_partner(world.db, present=True)
