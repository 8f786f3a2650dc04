"""The partner-school list in memory (access/cache.py): exact as long as the database notifies."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from leerid_gateway.access.cache import PartnerSchools
from leerid_gateway.db import create_session_factory
from leerid_gateway.tokens.live import LiveState


class _Recorder(PartnerSchools):
    """PartnerSchools that counts its reads of the table."""

    def __init__(self, requires: str | None = None) -> None:
        super().__init__()
        self.reads = 0
        if requires is not None:
            self.requires = requires

    async def codes(self, conn: AsyncConnection) -> frozenset[str]:
        before = self._codes if self._listening else None
        found = await super().codes(conn)
        self.reads += before is None
        return found


async def _listening(live: LiveState) -> None:
    async with asyncio.timeout(10):
        while not live.listening:
            live.listening_changed.clear()
            await live.listening_changed.wait()


@pytest.mark.parametrize("requires", [None, "SELECT false"])
async def test_the_list_is_kept_only_while_the_database_announces_changes(
    engines: dict[str, AsyncEngine], pg_url: str, requires: str | None
) -> None:
    """With the trigger (migration 0006) the list is read once; where the database would not announce
    a change (``requires`` false: a replica started before its migration), it is read every time."""
    engine = engines["postgres"]
    partners = _Recorder(requires)
    live = LiveState(create_session_factory(engine), pg_url, max_entries=10, subscribers=[partners])
    await live.start()
    try:
        await _listening(live)
        async with engine.connect() as conn:
            for _ in range(3):
                await partners.codes(conn)
        assert partners.reads == (1 if requires is None else 3)
    finally:
        await live.stop()


async def test_a_change_during_a_read_is_not_lost(engines: dict[str, AsyncEngine]) -> None:
    """A notification that arrives while the list is being read: that list is used once, not kept."""
    partners = PartnerSchools()
    partners.listening(True)

    class Interrupted:
        async def execute(self, statement: object) -> object:
            partners.notified("")  # the change lands while this read is in flight
            async with engines["postgres"].connect() as conn:
                return await conn.execute(statement)  # type: ignore[arg-type]

    await partners.codes(Interrupted())  # type: ignore[arg-type]
    assert partners._codes is None
    async with engines["postgres"].connect() as conn:
        await partners.codes(conn)
    assert partners._codes is not None


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
        async with asyncio.timeout(5):
            while len(heard) < len(statements):
                await asyncio.sleep(0.01)
        assert heard == ["leerid_partner_schools"] * 3
    finally:
        await listener.close()
