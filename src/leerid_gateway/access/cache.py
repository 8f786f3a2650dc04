"""The partner schools' codes in memory, for as long as PostgreSQL tells this replica of every change.

Migration 0006 notifies ``leerid_partner_schools`` on any change to the table; the replica's one
LISTEN connection (tokens/live.py) forwards it here, and checks every few seconds that the trigger
is still there and enabled. While that connection is down, or on SQLite (no NOTIFY), nothing is
served from memory: every login asks the database for its own schools, as before. A change that
arrives while the list is being read would be lost if that list were then kept; a generation
counter, bumped by every notification, prevents that (as tokens/live.py does for sessions).

What this cannot see: a writer that bypasses triggers (``session_replication_role = replica``,
as a logical-replication apply or a restore may run). Change partner schools with the CLI or SQL
as usual; after a restore, restart the replicas (docs/operations.md).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.access.models import PartnerSchool

CHANNEL = "leerid_partner_schools"
_ALL_CODES = select(PartnerSchool.code)


class PartnerSchools:
    """Flanders has about a thousand secondary schools: the whole list fits in memory."""

    channel = CHANNEL
    requires = (
        "SELECT EXISTS (SELECT FROM pg_trigger WHERE tgname = 'partner_schools_notify' "
        "AND tgrelid = to_regclass('partner_schools') AND tgenabled IN ('O', 'A'))"
    )

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._codes: frozenset[str] | None = None
        self._listening = False
        self._generation = 0

    def notified(self, _payload: str) -> None:
        self._generation += 1
        self._codes = None

    def listening(self, value: bool) -> None:
        """The LISTEN connection went up or down (or the trigger did): start over either way."""
        self._generation += 1
        self._codes = None
        self._listening = value

    async def codes(self) -> frozenset[str] | None:
        """Every partner school's code while this replica hears of every change; None when it cannot
        vouch for a list (then ask the database about the pupil's own schools).

        Call it outside any transaction: a list missing from memory is read on a connection of its
        own, with a snapshot taken now (never an older one of the caller's), and a request that held
        a pooled connection while waiting for a second could exhaust the pool.
        """
        if not self._listening:
            return None
        if self._codes is not None:
            return self._codes
        generation = self._generation
        codes = await self._load()
        if self._listening and generation == self._generation:
            self._codes = codes
        return codes

    async def _load(self) -> frozenset[str]:
        async with self._engine.connect() as conn:
            return frozenset((await conn.execute(_ALL_CODES)).scalars())
