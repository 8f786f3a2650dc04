"""The partner-school list in memory (access/cache.py): exact as long as the database notifies."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.access.cache import PartnerSchools
from leerid_gateway.db import create_session_factory
from leerid_gateway.tokens.live import LiveState


class _Recorder(PartnerSchools):
    """PartnerSchools that counts its reads of the table."""

    def __init__(self, engine: AsyncEngine, requires: str | None = None) -> None:
        super().__init__(engine)
        self.reads = 0
        if requires is not None:
            self.requires = requires

    async def _load(self) -> frozenset[str]:
        self.reads += 1
        return await super()._load()


async def _until(condition: object, seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("requires", [None, "SELECT false"])
async def test_the_list_is_kept_only_while_the_database_announces_changes(
    engines: dict[str, AsyncEngine], pg_url: str, requires: str | None
) -> None:
    """With the trigger (migration 0006) the list is read once; where the database would not announce
    a change (``requires`` false: a replica started before its migration), it is never served from
    memory: ``codes()`` says so and the login asks the database about its own schools."""
    engine = engines["postgres"]
    partners = _Recorder(engine, requires)
    live = LiveState(create_session_factory(engine), pg_url, max_entries=10, subscribers=[partners])
    await live.start()
    try:
        await _until(lambda: live.listening)
        answers = [await partners.codes() for _ in range(3)]
        if requires is None:
            assert partners.reads == 1 and answers[0] is not None and answers[0] == answers[2]
        else:
            assert partners.reads == 0 and answers == [None, None, None]
    finally:
        await live.stop()
    assert await partners.codes() is None  # the listener stopped: nothing vouches for the list


async def test_a_trigger_disabled_while_running_stops_the_caching(
    engines: dict[str, AsyncEngine], pg_url: str
) -> None:
    """The listener's probe (every 5 s) asks again whether the trigger is there and enabled."""
    engine = engines["postgres"]
    partners = PartnerSchools(engine)
    live = LiveState(create_session_factory(engine), pg_url, max_entries=10, subscribers=[partners])
    await live.start()
    try:
        await _until(lambda: live.listening)
        assert await partners.codes() is not None
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE partner_schools DISABLE TRIGGER partner_schools_notify"))
        try:
            await _until(lambda: partners._listening is False, seconds=12)
            assert await partners.codes() is None
        finally:
            async with engine.begin() as conn:
                await conn.execute(text("ALTER TABLE partner_schools ENABLE TRIGGER partner_schools_notify"))
        await _until(lambda: partners._listening, seconds=12)
        assert await partners.codes() is not None
    finally:
        await live.stop()


async def test_a_change_during_a_read_is_not_lost(engines: dict[str, AsyncEngine]) -> None:
    """A notification that arrives while the list is being read: that list is used once, not kept."""

    class Interrupted(PartnerSchools):
        async def _load(self) -> frozenset[str]:
            self.notified("")  # the change lands while this read is in flight
            return await super()._load()

    partners = Interrupted(engines["postgres"])
    partners.listening(True)
    assert await partners.codes() is not None
    assert partners._codes is None
    kept = PartnerSchools(engines["postgres"])
    kept.listening(True)
    await kept.codes()
    assert kept._codes is not None


async def test_the_trigger_announces_every_kind_of_change(
    engines: dict[str, AsyncEngine], pg_url: str
) -> None:
    import asyncpg

    engine = engines["postgres"]
    heard: list[str] = []
    listener = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await listener.add_listener("leerid_partner_schools", lambda *args: heard.append(args[2]))
        statements = [
            "INSERT INTO partner_schools (code, name, added_at) VALUES ('777777', 'x', now())",
            "UPDATE partner_schools SET name = 'y' WHERE code = '777777'",
            "DELETE FROM partner_schools WHERE code = '777777'",
        ]
        for statement in statements:
            async with engine.begin() as conn:
                await conn.execute(text(statement))
        await _until(lambda: len(heard) >= len(statements), seconds=5)
        assert heard == ["leerid_partner_schools"] * 3
    finally:
        await listener.close()
