"""The partner schools' codes in memory, for as long as PostgreSQL tells this replica of every change.

Migration 0006 notifies ``leerid_partner_schools`` on any change to the table; the replica's one
LISTEN connection (tokens/live.py) forwards it here. While that connection is down, or on SQLite
(no NOTIFY), nothing is served from memory: every login asks the database, as before. A change
that arrives while the list is being read would be lost if that list were then kept; a generation
counter, bumped by every notification, prevents that (as tokens/live.py does for sessions).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from leerid_gateway.access.models import PartnerSchool

CHANNEL = "leerid_partner_schools"
_ALL_CODES = select(PartnerSchool.code)


class PartnerSchools:
    """Flanders has about a thousand secondary schools: the whole list fits in memory."""

    channel = CHANNEL
    requires = "SELECT EXISTS (SELECT FROM pg_trigger WHERE tgname = 'partner_schools_notify')"

    def __init__(self) -> None:
        self._codes: frozenset[str] | None = None
        self._listening = False
        self._generation = 0

    def notified(self, _payload: str) -> None:
        self._generation += 1
        self._codes = None

    def listening(self, value: bool) -> None:
        """The LISTEN connection went up or down: start over either way."""
        self._generation += 1
        self._codes = None
        self._listening = value

    async def codes(self, conn: AsyncConnection) -> frozenset[str]:
        """Every partner school's code: from memory while listening, else read on ``conn``."""
        if self._listening and self._codes is not None:
            return self._codes
        generation = self._generation
        codes = frozenset((await conn.execute(_ALL_CODES)).scalars())
        if self._listening and generation == self._generation:
            self._codes = codes
        return codes
