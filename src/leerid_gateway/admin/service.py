"""Staff credentials and what staff may do with a pupil's data (protocol art. 4; GDPR art. 15, 17).

Every function that reads or removes personal data writes its privacy-log entry in the caller's
transaction (protocol art. 6): no access without a trace, no trace without the access.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import String, cast, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.admin import schemas
from leerid_gateway.admin.models import ROLES, StaffMember
from leerid_gateway.db import utcnow
from leerid_gateway.identity.models import AccountAlias, DataQualityReport, Identity, IdentityEvent
from leerid_gateway.kit.crypto import Hasher, random_token
from leerid_gateway.privacy import erasure
from leerid_gateway.privacy import service as privacy
from leerid_gateway.privacy.models import PrivacyLogEntry
from leerid_gateway.sessions.models import BrowserSession

KEY_PREFIX = "lgk_"
HASH_PURPOSE = "staff-key"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,99}$")
# The protocol's fields (art. 3) an identity view shows; what the privacy log says was read.
IDENTITY_FIELDS = ("given_name", "family_name", "leer_id_uuid", "account_uuids", "school")


# --- staff ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewStaff:
    name: str
    role: str
    api_key: str


async def add_staff(db: AsyncSession, hasher: Hasher, name: str, role: str) -> NewStaff:
    """A new staff credential; the key is returned once and only its HMAC is stored."""
    if not NAME.match(name):
        raise ValueError("a staff name is 2-100 of a-z 0-9 . _ - (e.g. an.peeters)")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key = random_token(32, prefix=KEY_PREFIX)
    db.add(
        StaffMember(
            id=random_token(12), name=name, role=role, key_hash=hasher.digest(key), created_at=utcnow()
        )
    )
    await db.flush()
    return NewStaff(name=name, role=role, api_key=key)


async def list_staff(db: AsyncSession) -> list[StaffMember]:
    return list(await db.scalars(select(StaffMember).order_by(StaffMember.created_at)))


async def revoke_staff(db: AsyncSession, name: str) -> bool:
    result = await db.execute(
        update(StaffMember)
        .where(StaffMember.name == name, StaffMember.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def authenticate(db: AsyncSession, hasher: Hasher, key: str) -> StaffMember | None:
    """The live staff member behind an API key. Looked up by keyed hash: no timing oracle on the key."""
    if not key.startswith(KEY_PREFIX) or len(key) > 100:
        return None
    return await db.scalar(
        select(StaffMember).where(
            StaffMember.key_hash == hasher.digest(key), StaffMember.revoked_at.is_(None)
        )
    )


# --- identities ----------------------------------------------------------------------------------


async def find_identity(db: AsyncSession, search: schemas.IdentitySearch) -> Identity | None:
    if search.sub is not None:
        return await by_sub(db, search.sub)
    if search.leer_id_uuid is not None:
        return await db.scalar(select(Identity).where(Identity.leer_id_uuid == search.leer_id_uuid))
    alias = select(AccountAlias.identity_id).where(AccountAlias.account_uuid == search.account_uuid)
    return await db.scalar(select(Identity).where(Identity.id.in_(alias)))


async def by_sub(db: AsyncSession, sub: uuid.UUID) -> Identity | None:
    return await db.scalar(select(Identity).where(Identity.sub == sub))


async def view(db: AsyncSession, identity: Identity) -> schemas.IdentityView:
    accounts = await db.scalars(
        select(AccountAlias.account_uuid)
        .where(AccountAlias.identity_id == identity.id)
        .order_by(AccountAlias.created_at)
    )
    return schemas.IdentityView(
        sub=identity.sub,
        leer_id_uuid=identity.leer_id_uuid,
        account_uuids=list(accounts),
        given_name=identity.given_name,
        family_name=identity.family_name,
        school_code=identity.school_code,
        school_name=identity.school_name,
        temporary=identity.temporary,
        created_at=identity.created_at,
        last_login_at=identity.last_login_at,
    )


async def look_up(
    db: AsyncSession, identity: Identity, *, actor: str, purpose: str, request_id: str | None
) -> schemas.IdentityView:
    """Protocol art. 4: a staff member reads one pupil's data, for a stated purpose, logged."""
    result = await view(db, identity)
    await privacy.record(
        db,
        actor=actor,
        action=privacy.IDENTITY_LOOKED_UP,
        purpose=purpose,
        sub=identity.sub,
        fields=IDENTITY_FIELDS,
        request_id=request_id,
    )
    return result


async def reports_naming(db: AsyncSession, sub: uuid.UUID) -> list[DataQualityReport]:
    text_sub = str(sub)
    rows = await db.scalars(
        select(DataQualityReport)
        .where(cast(DataQualityReport.subs, String).contains(text_sub))
        .order_by(DataQualityReport.id)
    )
    return [r for r in rows if text_sub in r.subs]


async def export(
    db: AsyncSession, identity: Identity, *, actor: str, purpose: str, request_id: str | None
) -> schemas.IdentityExport:
    """GDPR art. 15: the identity, its sessions (no secrets), events, reports and privacy-log entries."""
    sessions = await db.scalars(
        select(BrowserSession)
        .where(BrowserSession.identity_id == identity.id)
        .order_by(BrowserSession.created_at)
    )
    events = await db.scalars(
        select(IdentityEvent).where(IdentityEvent.sub == identity.sub).order_by(IdentityEvent.id)
    )
    log_entries = await db.scalars(
        select(PrivacyLogEntry).where(PrivacyLogEntry.sub == identity.sub).order_by(PrivacyLogEntry.id)
    )
    result = schemas.IdentityExport(
        exported_at=utcnow(),
        identity=await view(db, identity),
        sessions=[
            schemas.SessionView(
                sid=s.id,
                created_at=s.created_at,
                last_seen_at=s.last_seen_at,
                absolute_expires_at=s.absolute_expires_at,
                revoked_at=s.revoked_at,
            )
            for s in sessions
        ],
        events=[
            schemas.EventView(id=e.id, type=e.type, sub=e.sub, data=e.data, created_at=e.created_at)
            for e in events
        ],
        data_quality_reports=[report_view(r) for r in await reports_naming(db, identity.sub)],
        privacy_log=[log_view(e) for e in log_entries],
    )
    await privacy.record(
        db,
        actor=actor,
        action=privacy.IDENTITY_EXPORTED,
        purpose=purpose,
        sub=identity.sub,
        fields=IDENTITY_FIELDS,
        request_id=request_id,
    )
    return result


class Busy(Exception):
    """A login is changing this pupil right now; retry in a moment."""


async def erase(
    db: AsyncSession, sub: uuid.UUID, *, actor: str, purpose: str, request_id: str | None
) -> schemas.Erasure | None:
    """GDPR art. 17: delete the pupil now (None: unknown sub; Busy: a login holds them)."""
    if await by_sub(db, sub) is None:
        return None
    target = await erasure.lock_by_sub(db, sub)
    if target is None or not await erasure.claim(db, target):
        raise Busy
    done = await erasure.erase(
        db, target, actor=actor, action=privacy.IDENTITY_ERASED, purpose=purpose, request_id=request_id
    )
    return schemas.Erasure(
        sub=done.sub, aliases=done.aliases, sessions=done.sessions, data_quality_reports=done.reports
    )


def report_view(report: DataQualityReport) -> schemas.ReportView:
    return schemas.ReportView(
        id=report.id,
        kind=report.kind,
        subs=list(report.subs),
        account_uuid=report.account_uuid,
        detail=report.detail,
        created_at=report.created_at,
        handled_at=report.handled_at,
    )


def log_view(entry: PrivacyLogEntry) -> schemas.PrivacyLogView:
    return schemas.PrivacyLogView(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        sub=entry.sub,
        fields=list(entry.fields),
        purpose=entry.purpose,
        request_id=entry.request_id,
        data=entry.data,
        prev_hash=entry.prev_hash,
        hash=entry.hash,
    )
