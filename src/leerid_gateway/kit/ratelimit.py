"""Rate limits shared by every replica: fixed one-minute windows counted in the database.

One ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` per counted request (PostgreSQL and SQLite
both support it): in its own short transaction, inside the caller's, or on PostgreSQL as a CTE of
the caller's own statement (``/login`` and ``/callback``: ``oidc/store.py``). What is counted:

- ``/login`` and ``/callback`` per client address — generous by default, because a whole class
  logs in from one school NAT address at the same minute;
- failed client authentication on ``/introspect``, ``/revoke`` and ``/events``, per address and
  per client_id (the only guesses that matter are wrong ones, so the hot path of a correct
  client costs nothing);
- the staff API per address.

Over the limit: 429 with ``Retry-After`` (RFC 6585 §4), a Dutch page for pupils. (Counted in the
caller's transaction, the refused request's increment rolls back with it; counted as a CTE, it
stays. Either way the counter is over the limit until its window ends.)
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, bindparam, delete, literal
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from leerid_gateway.db import Base, connection, unit_of_work

WINDOW = 60


class RateCounter(Base):
    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window: Mapped[int] = mapped_column(Integer, primary_key=True)  # epoch minute
    count: Mapped[int] = mapped_column(Integer)


class RateLimited(Exception):
    def __init__(self, bucket: str, retry_after: int) -> None:
        super().__init__(bucket)
        self.bucket = bucket
        self.retry_after = retry_after


def _upsert(insert: Any) -> Any:
    """``INSERT … ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count``, built once per dialect
    (building a statement costs more CPU than running its cached compiled form)."""
    return (
        insert(RateCounter)
        .values(key=bindparam("key"), window=bindparam("window"), count=1)
        .on_conflict_do_update(
            index_elements=[RateCounter.key, RateCounter.window],
            set_={"count": RateCounter.count + literal(1)},
        )
        .returning(RateCounter.count)
    )


_UPSERT = {"postgresql": _upsert(pg_insert), "sqlite": _upsert(sqlite_insert)}
_HOUSEKEEPING = delete(RateCounter).where(RateCounter.window < bindparam("oldest"))

# The same upsert as a CTE for statements that count and act in one round trip (PostgreSQL).
COUNTED_CTE = (
    'counted AS (INSERT INTO rate_limits (key, "window", count) VALUES (:rate_key, :rate_window, 1) '
    'ON CONFLICT (key, "window") DO UPDATE SET count = rate_limits.count + 1 RETURNING count)'
)


@dataclass(frozen=True, slots=True)
class Count:
    """One request to count: its bucket, the counter's key and window, and the limit it is judged
    against."""

    bucket: str
    key: str
    window: int
    limit: int
    at: float

    def params(self) -> dict[str, Any]:
        """The bind parameters of ``COUNTED_CTE`` (and ``:rate_limit`` for the caller's condition)."""
        return {"rate_key": self.key, "rate_window": self.window, "rate_limit": self.limit}


def _key(bucket: str, subject: str) -> str:
    return f"{bucket}:{subject}"[:200]


class RateLimiter:
    def __init__(self, factory: async_sessionmaker[AsyncSession], *, enabled: bool = True) -> None:
        self._factory = factory
        self.enabled = enabled
        # Keys this replica saw over the limit: refused without a database round trip.
        self._blocked: dict[str, float] = {}

    def check_blocked(self, bucket: str, subject: str) -> None:
        key = _key(bucket, subject)
        until = self._blocked.get(key)
        if until is not None:
            if until > time.time():
                raise RateLimited(bucket, max(1, int(until - time.time()) + 1))
            del self._blocked[key]

    async def hit(self, bucket: str, subject: str, limit: int) -> None:
        """Count one request in its own short transaction; raise RateLimited over ``limit``."""
        counted = self.prepare(bucket, subject, limit)
        if counted is not None:
            async with unit_of_work(self._factory) as db:
                await self.add(await connection(db), counted)

    def prepare(self, bucket: str, subject: str, limit: int) -> Count | None:
        """What to count for one request, or None when this limit is off. Raises RateLimited at once
        for a key this replica already saw over the limit (no database round trip)."""
        if not self.enabled or limit <= 0:
            return None
        self.check_blocked(bucket, subject)
        now = time.time()
        return Count(bucket, _key(bucket, subject), window=int(now // WINDOW), limit=limit, at=now)

    async def add(self, conn: AsyncConnection, counted: Count) -> None:
        """Count one request inside the caller's transaction. Over the limit the exception rolls
        the caller's transaction back, the increment with it: the counter rests at the limit and
        every further request is refused until the window ends, from this replica's memory
        without asking the database."""
        params = {"key": counted.key, "window": counted.window}
        count = int((await conn.execute(_UPSERT[conn.dialect.name], params)).scalar_one())
        if housekeeping_due():
            await housekeeping(conn, counted)
        self.judge(counted, count)

    def judge(self, counted: Count, count: int) -> None:
        """Raise RateLimited when ``count`` (the counter after this request) is over the limit."""
        if count > counted.limit:
            until = (counted.window + 1) * WINDOW
            self._blocked[counted.key] = until
            if len(self._blocked) > 10000:
                self._blocked.clear()
            raise RateLimited(counted.bucket, max(1, int(until - counted.at) + 1))


def housekeeping_due() -> bool:
    """Now and then (1 % of counted requests: no timer needed)."""
    return random.random() < 0.01  # noqa: S311 — housekeeping, not security


async def housekeeping(conn: AsyncConnection, counted: Count) -> None:
    """Drop windows long past."""
    await conn.execute(_HOUSEKEEPING, {"oldest": counted.window - 5})
