"""Retention (protocol art. 3: "Het inactieve account wordt verwijderd na een periode van 3 jaar";
art. 11: the retention and destruction policy): the purge, its batches, its locks."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import create_session_factory, unit_of_work, utcnow
from leerid_gateway.identity.models import AccountAlias, DataQualityReport, Identity, IdentityEvent
from leerid_gateway.identity.service import _account_key, _lock_key
from leerid_gateway.oidc.models import LoginTransaction
from leerid_gateway.privacy import retention
from leerid_gateway.privacy import service as privacy
from leerid_gateway.privacy.models import PrivacyLogEntry
from leerid_gateway.sessions.models import BrowserSession
from leerid_gateway.settings import Settings
from tests.privacy.factories import POLICY, THREE_YEARS, count, make_identity, make_report
from tests.test_cli import run_cli

HOUR = dt.timedelta(hours=1)


async def events_of(engine: AsyncEngine) -> list[tuple[str, uuid.UUID]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(IdentityEvent.type, IdentityEvent.sub).order_by(IdentityEvent.id))
        return [(t, s) for t, s in rows]


async def log_of(engine: AsyncEngine) -> list[tuple[str, str, uuid.UUID | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(PrivacyLogEntry.actor, PrivacyLogEntry.action, PrivacyLogEntry.sub).order_by(
                PrivacyLogEntry.id
            )
        )
        return [(a, act, s) for a, act, s in rows]


def test_the_retention_period_defaults_to_three_years() -> None:
    settings = Settings(
        oidc_issuer="https://authenticatie.vlaanderen.be/op",
        oidc_client_id="x",
        oidc_client_secret="a-real-looking-client-secret",
        allowed_return_urls=["https://eteacher.example/"],
        secret_key="s" * 40,
    )
    policy = retention.RetentionPolicy.from_settings(settings)
    assert policy.identity_retention == dt.timedelta(days=1096)
    assert policy.privacy_log_retention == dt.timedelta(days=1826)
    assert settings.purge_interval == 86400


async def test_only_identities_inactive_for_three_years_go_with_everything_attached(db: AsyncEngine) -> None:
    now = utcnow()
    old = await make_identity(db, last_login_at=now - THREE_YEARS - HOUR, accounts=2, sessions=2)
    recent = await make_identity(db, last_login_at=now - THREE_YEARS + HOUR, accounts=1, sessions=1)
    only_old = await make_report(db, old.sub)
    both = await make_report(db, old.sub, recent.sub)
    only_recent = await make_report(db, recent.sub)

    report = await retention.purge(create_session_factory(db), POLICY, now=now)

    assert (report.identities, report.skipped_identities, report.complete) == (1, 0, True)
    async with db.connect() as conn:
        assert list((await conn.execute(select(Identity.sub))).scalars()) == [recent.sub]
        reports = set((await conn.execute(select(DataQualityReport.id))).scalars())
    assert await count(db, AccountAlias, AccountAlias.identity_id == old.id) == 0
    assert await count(db, BrowserSession, BrowserSession.identity_id == old.id) == 0
    assert await count(db, AccountAlias, AccountAlias.identity_id == recent.id) == 1
    assert await count(db, BrowserSession, BrowserSession.identity_id == recent.id) == 1
    assert reports == {both, only_recent}  # a report naming a living pupil stays
    assert only_old not in reports
    # eTeacher is told (identity.deleted) and the privacy log says who, what, why — no names.
    assert await events_of(db) == [("identity.deleted", old.sub)]
    assert await log_of(db) == [("system", privacy.IDENTITY_PURGED, old.sub)]
    async with db.connect() as conn:
        entry = (await conn.execute(select(PrivacyLogEntry.__table__))).one()
    assert "protocol art. 3" in entry.purpose
    assert entry.data == {"aliases": 2, "sessions": 2, "reports": 1}


async def test_a_dry_run_counts_and_changes_nothing(db: AsyncEngine, database_url: str) -> None:
    now = utcnow()
    await make_identity(db, last_login_at=now - THREE_YEARS - HOUR)
    await make_identity(db, last_login_at=now)

    report = await retention.purge(create_session_factory(db), POLICY, dry_run=True, now=now)
    assert (report.dry_run, report.identities) == (True, 1)
    cli = run_cli(database_url, "purge", "--dry-run")
    assert cli.returncode == 0, cli.stderr
    assert "would remove: 1 identities" in cli.stdout
    assert await count(db, Identity) == 2
    assert await events_of(db) == []
    assert await log_of(db) == []

    done = run_cli(database_url, "purge")
    assert done.returncode == 0, done.stderr
    assert "removed: 1 identities" in done.stdout
    assert await count(db, Identity) == 1


async def test_an_interrupted_purge_is_finished_by_the_next_run(db: AsyncEngine) -> None:
    """Each batch commits on its own; stopping after one leaves a consistent state to rerun from."""
    now = utcnow()
    olds = [await make_identity(db, last_login_at=now - THREE_YEARS - HOUR * (i + 1)) for i in range(3)]
    factory = create_session_factory(db)

    first = await retention.purge(factory, POLICY, batch_size=1, max_batches=1, now=now)

    assert (first.identities, first.complete, first.batches) == (1, False, 1)
    assert await count(db, Identity) == 2
    assert [t for t, _ in await events_of(db)] == ["identity.deleted"]

    second = await retention.purge(factory, POLICY, batch_size=1, now=now)

    assert (second.identities, second.complete) == (2, True)
    assert await count(db, Identity) == 0
    deleted = await events_of(db)
    assert sorted(s for _, s in deleted) == sorted(o.sub for o in olds)  # each exactly once
    assert len(await log_of(db)) == 3
    async with factory() as session:
        assert (await privacy.verify(session)).ok


async def test_expired_logins_and_long_dead_sessions_go(db: AsyncEngine) -> None:
    now = utcnow()
    pupil = await make_identity(db, last_login_at=now, sessions=0)
    day = dt.timedelta(days=1)
    async with unit_of_work(create_session_factory(db)) as session:
        for name, expires in (("expired", now - HOUR), ("live", now + HOUR)):
            session.add(
                LoginTransaction(
                    state_hash=name.encode().ljust(32, b"."),
                    browser_hash=b"b" * 32,
                    nonce="n",
                    code_verifier="v",
                    return_to="https://eteacher.example/",
                    created_at=now - 2 * HOUR,
                    expires_at=expires,
                )
            )
        sessions = {
            "revoked-long-ago": dict(
                last_seen_at=now - 3 * day, absolute=now + day, revoked_at=now - 2 * day
            ),
            "too-old": dict(last_seen_at=now - 3 * day, absolute=now - 2 * day, revoked_at=None),
            "idle-long-ago": dict(last_seen_at=now - 3 * day, absolute=now + day, revoked_at=None),
            "revoked-just-now": dict(last_seen_at=now, absolute=now + day, revoked_at=now - HOUR),
            "live": dict(last_seen_at=now, absolute=now + day, revoked_at=None),
        }
        for sid, values in sessions.items():
            session.add(
                BrowserSession(
                    id=sid,
                    secret_hash=sid.encode().ljust(32, b"."),
                    identity_id=pupil.id,
                    created_at=now - 4 * day,
                    last_seen_at=values["last_seen_at"],
                    absolute_expires_at=values["absolute"],
                    revoked_at=values["revoked_at"],
                )
            )

    report = await retention.purge(create_session_factory(db), POLICY, now=now)

    assert (report.sessions, report.login_transactions, report.identities) == (3, 1, 0)
    async with db.connect() as conn:
        left = set((await conn.execute(select(BrowserSession.id))).scalars())
    assert left == {"revoked-just-now", "live"}
    assert await count(db, LoginTransaction) == 1


async def test_a_pupil_a_login_is_changing_is_skipped_not_waited_for(pg: AsyncEngine) -> None:
    """PostgreSQL: the purge never waits for a login (no deadlock, no long lock); the next run takes
    the pupil if they are still inactive."""
    now = utcnow()
    old = await make_identity(pg, last_login_at=now - THREE_YEARS - HOUR, accounts=1)
    other = await make_identity(pg, last_login_at=now - THREE_YEARS - HOUR)
    async with pg.connect() as conn:
        account = (
            await conn.execute(select(AccountAlias.account_uuid).where(AccountAlias.identity_id == old.id))
        ).scalar_one()
    factory = create_session_factory(pg)

    async with pg.connect() as login:  # a login holding the pupil's reconciliation lock
        await login.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(_account_key(account))})
        report = await asyncio.wait_for(retention.purge(factory, POLICY, now=now), timeout=10)
        await login.rollback()

    assert (report.identities, report.skipped_identities) == (1, 1)
    async with pg.connect() as conn:
        assert list((await conn.execute(select(Identity.sub))).scalars()) == [old.sub]

    async with pg.connect() as row_holder:  # a transaction holding the row: SKIP LOCKED passes it by
        await row_holder.execute(select(Identity.id).where(Identity.id == old.id).with_for_update())
        report = await asyncio.wait_for(retention.purge(factory, POLICY, now=now), timeout=10)
        await row_holder.rollback()
    assert report.identities == 0

    report = await retention.purge(factory, POLICY, now=now)
    assert report.identities == 1
    assert await count(pg, Identity) == 0
    assert sorted(s for _, s in await events_of(pg)) == sorted([old.sub, other.sub])


async def test_only_one_replica_purges_at_a_time(pg: AsyncEngine) -> None:
    """The service's daily purge takes a session advisory lock on a dedicated connection first."""
    now = utcnow()
    await make_identity(pg, last_login_at=now - THREE_YEARS - HOUR)
    settings = Settings(
        database_url="postgresql+asyncpg://unused/",
        oidc_issuer="https://authenticatie.vlaanderen.be/op",
        oidc_client_id="x",
        oidc_client_secret="a-real-looking-client-secret",
        allowed_return_urls=["https://eteacher.example/"],
        secret_key="s" * 40,
    )
    scheduler = retention.RetentionScheduler(pg, create_session_factory(pg), settings)

    async with pg.connect() as other_replica:
        await other_replica.execute(text("SELECT pg_advisory_lock(:k)"), {"k": retention.PURGE_LOCK_KEY})
        assert await scheduler.run_once(now=now) is None
        assert await count(pg, Identity) == 1
        await other_replica.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": retention.PURGE_LOCK_KEY})
        await other_replica.commit()

    report = await scheduler.run_once(now=now)
    assert report is not None
    assert report.identities == 1
    assert await count(pg, Identity) == 0
    async with pg.connect() as conn:  # and it let go of the lock
        assert await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": retention.PURGE_LOCK_KEY})
        await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": retention.PURGE_LOCK_KEY})
