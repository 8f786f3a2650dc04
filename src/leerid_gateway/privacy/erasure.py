"""Deleting one pupil with everything attached: protocol art. 3 (3 years after the last login) and
GDPR art. 17 (erasure on request). eTeacher learns it from an ``identity.deleted`` event.

Concurrency (PostgreSQL): a login changing an identity holds advisory locks on all of its keys and
then updates its row (identity/service.py). Erasure takes the row with ``FOR UPDATE SKIP LOCKED`` and
then only *tries* the key locks: whoever is logging in wins, erasure skips that pupil and never
waits, so the two can never deadlock. A login that starts afterwards waits for the key locks and
then finds no identity, and makes a new one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import String, cast, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.identity import events
from leerid_gateway.identity.models import AccountAlias, DataQualityReport, Identity

# The reconciliation's own lock keys: exactly the ones a login takes (identity/service.py).
from leerid_gateway.identity.service import lock_order
from leerid_gateway.privacy import service as privacy
from leerid_gateway.sessions.models import BrowserSession


@dataclass(frozen=True, slots=True)
class Target:
    id: int
    sub: uuid.UUID
    leer_id_uuid: str | None


@dataclass(frozen=True, slots=True)
class Erased:
    sub: uuid.UUID
    aliases: int
    sessions: int
    reports: int


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def claim(session: AsyncSession, target: Target) -> bool:
    """Try the locks a login would hold on this identity; False if any is taken (do not wait)."""
    if not _is_postgres(session):
        return True  # SQLite: BEGIN IMMEDIATE, one writer
    aliases = await session.scalars(
        select(AccountAlias.account_uuid).where(AccountAlias.identity_id == target.id)
    )
    for key in lock_order(aliases, target.leer_id_uuid):
        got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})
        if not got:
            return False
    return True


async def lock_by_sub(session: AsyncSession, sub: uuid.UUID) -> Target | None:
    """The identity's row, locked (SKIP LOCKED: None while a login is changing it)."""
    row = (
        await session.execute(
            select(Identity.id, Identity.sub, Identity.leer_id_uuid)
            .where(Identity.sub == sub)
            .with_for_update(skip_locked=True)
        )
    ).first()
    return Target(*row) if row is not None else None


async def erase(
    session: AsyncSession,
    target: Target,
    *,
    actor: str,
    action: str,
    purpose: str,
    request_id: str | None = None,
) -> Erased:
    """Delete the identity, its aliases, its sessions and the data-quality reports that name no
    other living identity; then the event and the privacy-log entry (the journal lock comes last)."""
    removed_sessions = await session.execute(
        delete(BrowserSession).where(BrowserSession.identity_id == target.id)
    )
    removed_aliases = await session.execute(delete(AccountAlias).where(AccountAlias.identity_id == target.id))
    await session.execute(delete(Identity).where(Identity.id == target.id))
    reports = await _orphaned_reports(session, target.sub)
    if reports:
        await session.execute(delete(DataQualityReport).where(DataQualityReport.id.in_(reports)))
    await events.emit(session, events.DELETED, target.sub)
    result = Erased(
        sub=target.sub,
        aliases=int(removed_aliases.rowcount),  # type: ignore[attr-defined]
        sessions=int(removed_sessions.rowcount),  # type: ignore[attr-defined]
        reports=len(reports),
    )
    await privacy.record(
        session,
        actor=actor,
        action=action,
        purpose=purpose,
        sub=target.sub,
        fields=["given_name", "family_name", "leer_id_uuid", "account_uuids", "school"],
        request_id=request_id,
        data={"aliases": result.aliases, "sessions": result.sessions, "reports": result.reports},
    )
    return result


async def _orphaned_reports(session: AsyncSession, sub: uuid.UUID) -> list[int]:
    """Reports naming ``sub`` whose other subs (if any) no longer belong to a living identity."""
    text_sub = str(sub)
    candidates = await session.execute(
        select(DataQualityReport.id, DataQualityReport.subs).where(
            cast(DataQualityReport.subs, String).contains(text_sub)
        )
    )
    orphaned = []
    for report_id, subs in candidates:
        if text_sub not in subs:
            continue
        others = [uuid.UUID(s) for s in subs if s != text_sub]
        living = (
            await session.scalar(select(Identity.id).where(Identity.sub.in_(others)).limit(1))
            if others
            else None
        )
        if living is None:
            orphaned.append(report_id)
    return orphaned
