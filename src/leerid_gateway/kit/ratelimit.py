"""Rate limits shared by every replica: fixed one-minute windows counted in the database.

One ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` per counted request (PostgreSQL and SQLite
both support it), in its own short transaction. What is counted:

- ``/login`` and ``/callback`` per client address — generous by default, because a whole class
  logs in from one school NAT address at the same minute;
- failed client authentication on ``/introspect``, ``/revoke`` and ``/events``, per address and
  per client_id (the only guesses that matter are wrong ones, so the hot path of a correct
  client costs nothing);
- the staff API per address.

Over the limit: 429 with ``Retry-After`` (RFC 6585 §4), a Dutch page for pupils.
"""

from __future__ import annotations

import random
import time

from sqlalchemy import Integer, String, delete, literal
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from leerid_gateway.db import Base, unit_of_work

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


class RateLimiter:
    def __init__(self, factory: async_sessionmaker[AsyncSession], *, enabled: bool = True) -> None:
        self._factory = factory
        self.enabled = enabled
        # Keys this replica saw over the limit: refused without a database round trip.
        self._blocked: dict[str, float] = {}

    def check_blocked(self, bucket: str, subject: str) -> None:
        key = f"{bucket}:{subject}"
        until = self._blocked.get(key)
        if until is not None:
            if until > time.time():
                raise RateLimited(bucket, max(1, int(until - time.time()) + 1))
            del self._blocked[key]

    async def hit(self, bucket: str, subject: str, limit: int) -> None:
        """Count one request in its own short transaction; raise RateLimited over ``limit``."""
        if not self.enabled or limit <= 0:
            return
        self.check_blocked(bucket, subject)
        async with unit_of_work(self._factory) as db:
            await self.count(db, bucket, subject, limit)

    async def count(self, db: AsyncSession, bucket: str, subject: str, limit: int) -> None:
        """Count one request inside the caller's transaction (saves a round trip on /login and
        /callback). Over the limit the caller's transaction is rolled back by the exception, the
        increment with it: the counter rests at the limit and every further request is refused
        until the window ends, from this replica's memory without asking the database."""
        if not self.enabled or limit <= 0:
            return
        self.check_blocked(bucket, subject)
        key = f"{bucket}:{subject}"[:200]
        now = time.time()
        window = int(now // WINDOW)
        insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = (
            insert(RateCounter)
            .values(key=key, window=window, count=1)
            .on_conflict_do_update(
                index_elements=[RateCounter.key, RateCounter.window],
                set_={"count": RateCounter.count + literal(1)},
            )
            .returning(RateCounter.count)
        )
        count = int((await db.execute(statement)).scalar_one())
        if random.random() < 0.01:  # noqa: S311 — housekeeping, not security
            await db.execute(delete(RateCounter).where(RateCounter.window < window - 5))
        if count > limit:
            until = (window + 1) * WINDOW
            self._blocked[key] = until
            if len(self._blocked) > 10000:
                self._blocked.clear()
            raise RateLimited(bucket, max(1, int(until - now) + 1))
