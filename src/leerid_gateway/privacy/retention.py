"""The retention purge (protocol art. 3 and 11): nothing is kept longer than needed.

- identities inactive for ``LEERID_RETENTION_DAYS`` (default 1096, three years), with everything
  attached, each announced to eTeacher (``identity.deleted``) and written to the privacy log;
- expired login transactions, long-dead sessions and revoked tokens past their expiry;
- privacy-log entries past ``LEERID_PRIVACY_LOG_RETENTION_DAYS``, keeping the chain verifiable.

Bounded batches, each its own short transaction, with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL:
no long locks, and an interrupted run leaves only finished batches behind, so rerunning is safe.
Runs from ``leerid-gateway purge`` and daily in the service (``RetentionScheduler``); a session-level
advisory lock on a dedicated connection lets one replica at a time do it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from leerid_gateway.db import unit_of_work, utcnow
from leerid_gateway.identity.models import Identity
from leerid_gateway.oidc.models import LoginTransaction
from leerid_gateway.privacy import erasure
from leerid_gateway.privacy import service as privacy
from leerid_gateway.privacy.models import PrivacyLogEntry
from leerid_gateway.sessions.models import BrowserSession
from leerid_gateway.settings import Settings
from leerid_gateway.tokens.revocation import forget_expired

log = logging.getLogger(__name__)

# Session-level advisory lock: one replica purges at a time (different from db.JOURNAL_LOCK_KEY).
PURGE_LOCK_KEY = 0x1EE51D_0F
# A dead session is kept this long after it ended (a day of slack for clocks and debugging).
SESSION_GRACE = dt.timedelta(days=1)
PURGE_PURPOSE = "bewaartermijn verstreken: 3 jaar zonder aanmelding (protocol art. 3, art. 11)"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    identity_retention: dt.timedelta
    privacy_log_retention: dt.timedelta
    session_idle: dt.timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            identity_retention=dt.timedelta(days=settings.retention_days),
            privacy_log_retention=dt.timedelta(days=settings.privacy_log_retention_days),
            session_idle=dt.timedelta(seconds=settings.session_idle_ttl),
        )


@dataclass(slots=True)
class PurgeReport:
    dry_run: bool
    identities: int = 0
    skipped_identities: int = 0  # being changed by a login right now; the next run takes them
    sessions: int = 0
    login_transactions: int = 0
    revoked_tokens: int = 0
    privacy_log: int = 0
    batches: int = 0
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class _Budget:
    left: int | None
    spent: int = field(default=0)

    def take(self) -> bool:
        if self.left is not None and self.spent >= self.left:
            return False
        self.spent += 1
        return True


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _dead_sessions(policy: RetentionPolicy, now: dt.datetime) -> ColumnElement[bool]:
    line = now - SESSION_GRACE
    return or_(
        BrowserSession.absolute_expires_at < line,
        BrowserSession.revoked_at < line,
        BrowserSession.last_seen_at < line - policy.session_idle,
    )


async def purge(
    factory: async_sessionmaker[AsyncSession],
    policy: RetentionPolicy,
    *,
    batch_size: int = 500,
    max_batches: int | None = None,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> PurgeReport:
    """One full purge; ``max_batches`` stops it early (as an interruption would)."""
    now = now or utcnow()
    if dry_run:
        return await _count(factory, policy, now)
    report = PurgeReport(dry_run=False)
    budget = _Budget(max_batches)
    steps: list[Callable[[], Awaitable[bool]]] = [
        lambda: _identities(factory, policy, now, batch_size, budget, report),
        lambda: _simple(
            factory, budget, report, "sessions", BrowserSession.id, _dead_sessions(policy, now), batch_size
        ),
        lambda: _simple(
            factory,
            budget,
            report,
            "login_transactions",
            LoginTransaction.state_hash,
            LoginTransaction.expires_at < now,
            batch_size,
        ),
        lambda: _revoked_tokens(factory, budget, report),
        lambda: _privacy_log(factory, policy, now, batch_size, budget, report),
    ]
    for step in steps:
        if not await step():
            report.complete = False
            break
    report.batches = budget.spent
    return report


async def _identities(
    factory: async_sessionmaker[AsyncSession],
    policy: RetentionPolicy,
    now: dt.datetime,
    batch_size: int,
    budget: _Budget,
    report: PurgeReport,
) -> bool:
    cutoff = now - policy.identity_retention
    after = 0
    while True:
        if not budget.take():
            return False
        async with unit_of_work(factory) as db:
            query = (
                select(Identity.id, Identity.sub, Identity.leer_id_uuid)
                .where(Identity.last_login_at < cutoff, Identity.id > after)
                .order_by(Identity.id)
                .limit(batch_size)
            )
            if _postgres(db):
                query = query.with_for_update(skip_locked=True)
            batch = [erasure.Target(*row) for row in await db.execute(query)]
            for target in batch:
                savepoint = await db.begin_nested()
                if not await erasure.claim(db, target):
                    await savepoint.rollback()  # releases the key locks we did get
                    report.skipped_identities += 1
                    continue
                await erasure.erase(
                    db, target, actor=privacy.SYSTEM, action=privacy.IDENTITY_PURGED, purpose=PURGE_PURPOSE
                )
                await savepoint.commit()
                report.identities += 1
        if len(batch) < batch_size:
            return True
        after = batch[-1].id


async def _simple(
    factory: async_sessionmaker[AsyncSession],
    budget: _Budget,
    report: PurgeReport,
    counter: str,
    key: Any,
    condition: ColumnElement[bool],
    batch_size: int,
) -> bool:
    """Delete rows matching ``condition`` by primary key, ``batch_size`` per transaction."""
    while True:
        if not budget.take():
            return False
        async with unit_of_work(factory) as db:
            query = select(key).where(condition).limit(batch_size)
            if _postgres(db):
                query = query.with_for_update(skip_locked=True)
            keys = list(await db.scalars(query))
            if keys:
                await db.execute(delete(key.class_).where(key.in_(keys)))
        setattr(report, counter, getattr(report, counter) + len(keys))
        if len(keys) < batch_size:
            return True


async def _revoked_tokens(
    factory: async_sessionmaker[AsyncSession], budget: _Budget, report: PurgeReport
) -> bool:
    # Few rows by construction (revoked tokens live at most one token lifetime): one statement.
    if not budget.take():
        return False
    async with unit_of_work(factory) as db:
        report.revoked_tokens += await forget_expired(db)
    return True


async def _privacy_log(
    factory: async_sessionmaker[AsyncSession],
    policy: RetentionPolicy,
    now: dt.datetime,
    batch_size: int,
    budget: _Budget,
    report: PurgeReport,
) -> bool:
    async with factory() as db:
        newest = await db.scalar(select(func.max(PrivacyLogEntry.id)))
    if newest is None:
        return True
    while True:
        if not budget.take():
            return False
        async with unit_of_work(factory) as db:
            removed = await privacy.prune(
                db, before=now - policy.privacy_log_retention, batch_size=batch_size, below_id=newest
            )
        report.privacy_log += removed
        if removed < batch_size:
            return True


async def _count(
    factory: async_sessionmaker[AsyncSession], policy: RetentionPolicy, now: dt.datetime
) -> PurgeReport:
    """--dry-run: what a purge would remove now, changing nothing."""
    async with factory() as db:

        async def count(model: Any, condition: ColumnElement[bool]) -> int:
            return int(await db.scalar(select(func.count()).select_from(model).where(condition)) or 0)

        newest = await db.scalar(select(func.max(PrivacyLogEntry.id)))
        return PurgeReport(
            dry_run=True,
            identities=await count(Identity, Identity.last_login_at < now - policy.identity_retention),
            sessions=await count(BrowserSession, _dead_sessions(policy, now)),
            login_transactions=await count(LoginTransaction, LoginTransaction.expires_at < now),
            privacy_log=await count(
                PrivacyLogEntry,
                (PrivacyLogEntry.at < now - policy.privacy_log_retention)
                & (PrivacyLogEntry.id < (newest or 0)),
            ),
        )


class RetentionScheduler:
    """Runs the purge every ``purge_interval`` seconds in the service (first run after at most ten
    minutes, so that frequent restarts cannot starve it); one replica at a time on PostgreSQL."""

    def __init__(
        self, engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], settings: Settings
    ) -> None:
        self._engine = engine
        self._factory = factory
        self._policy = RetentionPolicy.from_settings(settings)
        self._interval = settings.purge_interval
        self._batch_size = settings.purge_batch_size
        self._enabled = settings.purge_enabled
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    async def start(self) -> None:
        if self._enabled:
            self._task = asyncio.create_task(self._forever(), name="retention-purge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self, *, now: dt.datetime | None = None) -> PurgeReport | None:
        """Purge unless another replica is purging right now (then None)."""
        if self._engine.dialect.name != "postgresql":
            return await purge(self._factory, self._policy, batch_size=self._batch_size, now=now)
        async with self._engine.connect() as raw:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": PURGE_LOCK_KEY})
            if not got:
                log.info("retention purge skipped: another replica is purging")
                return None
            try:
                return await purge(self._factory, self._policy, batch_size=self._batch_size, now=now)
            finally:
                with contextlib.suppress(Exception):  # a dropped connection released it already
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PURGE_LOCK_KEY})

    async def _forever(self) -> None:
        await asyncio.sleep(min(self._interval, 600.0))
        while True:
            try:
                report = await self.run_once()
                if report is not None:
                    self.runs += 1
                    log.info("retention purge done: %s", report.as_dict())
            except Exception as exc:  # the next round retries; finished batches stay done
                log.warning("retention purge failed: %s", type(exc).__name__)
            await asyncio.sleep(self._interval)
