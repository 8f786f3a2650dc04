"""Rows for the privacy tests, written straight to the database (as a real login would leave them)."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import create_session_factory, unit_of_work, utcnow
from leerid_gateway.identity.models import AccountAlias, DataQualityReport, Identity
from leerid_gateway.kit.crypto import random_token
from leerid_gateway.models import load_all
from leerid_gateway.privacy.retention import RetentionPolicy
from leerid_gateway.sessions.models import BrowserSession

THREE_YEARS = dt.timedelta(days=1096)
POLICY = RetentionPolicy(
    identity_retention=THREE_YEARS,
    privacy_log_retention=dt.timedelta(days=1826),
    session_idle=dt.timedelta(hours=1),
)


async def make_identity(
    engine: AsyncEngine,
    *,
    last_login_at: dt.datetime | None = None,
    identified: bool = True,
    accounts: int = 2,
    sessions: int = 1,
) -> Identity:
    """An identity with ``accounts`` aliases and ``sessions`` live-looking sessions."""
    when = last_login_at or utcnow()
    async with unit_of_work(create_session_factory(engine)) as db:
        identity = Identity(
            sub=uuid.uuid4(),
            leer_id_uuid=str(uuid.uuid4()) if identified else None,
            given_name="Testa",
            family_name="Leerling",
            school_code="012345",
            school_name="Testschool",
            created_at=when,
            last_login_at=when,
        )
        db.add(identity)
        await db.flush()
        for _ in range(accounts):
            db.add(AccountAlias(account_uuid=str(uuid.uuid4()), identity_id=identity.id, created_at=when))
        for _ in range(sessions):  # live sessions, whatever the last login (the cascade is the point)
            db.add(
                BrowserSession(
                    id=random_token(16),
                    secret_hash=secrets.token_bytes(32),
                    identity_id=identity.id,
                    created_at=utcnow(),
                    last_seen_at=utcnow(),
                    absolute_expires_at=utcnow() + dt.timedelta(hours=8),
                )
            )
    return identity


async def make_report(engine: AsyncEngine, *subs: uuid.UUID) -> int:
    async with unit_of_work(create_session_factory(engine)) as db:
        report = DataQualityReport(
            kind="account_in_two_pupils",
            subs=sorted(str(s) for s in subs),
            account_uuid=str(uuid.uuid4()),
            detail="test report",
            created_at=utcnow(),
        )
        db.add(report)
        await db.flush()
        return report.id


async def count(engine: AsyncEngine, model: Any, *where: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def all_rows_text(engine: AsyncEngine) -> str:
    """Every value of every table as one text, to search for what must not be stored."""
    load_all()
    from leerid_gateway.db import Base

    parts = []
    async with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                parts.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(parts)


SQLITE_APPEND_ONLY = (
    "CREATE TRIGGER privacy_log_append_only BEFORE UPDATE ON privacy_log "
    "BEGIN SELECT RAISE(ABORT, 'privacy_log is append-only'); END"
)


async def tamper(engine: AsyncEngine, statement: str, params: dict[str, Any]) -> None:
    """Change the privacy log behind the application's back, as an intruder with database rights
    would: past the append-only trigger (PostgreSQL: replica mode skips triggers; SQLite: drop it)."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text(statement), params)
        else:
            await conn.execute(text("DROP TRIGGER privacy_log_append_only"))
            await conn.execute(text(statement), params)
            await conn.execute(text(SQLITE_APPEND_ONLY))
