"""Writing, reading and checking the privacy log (protocol art. 6: "een logsysteem en logbeheer van
de privacylogs"). An entry is always written in the transaction of the act it records."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.db import (
    JOURNAL_LOCK_KEY,
    Db,
    connection,
    dialect_name,
    flush_pending,
    journal_lock,
    orm,
    rows,
    utcnow,
)
from leerid_gateway.privacy.chain import GENESIS, entry_hash, entry_hash_parts, entry_hash_parts_around_sub
from leerid_gateway.privacy.models import PrivacyLogEntry

# Actions, stable strings: the DPO's exports and queries rely on them.
LOGIN_RECEIVED = "login.received"  # attributes received from LeerID and stored
LOGIN_REFUSED = "login.refused"  # access refused (no enrolment at a partner school)
IDENTITY_MERGED = "identity.merged"
SESSION_REVOKED = "session.revoked"
IDENTITY_LOOKED_UP = "identity.looked_up"  # staff read an identity's data
IDENTITY_EXPORTED = "identity.exported"  # GDPR art. 15 export
IDENTITY_ERASED = "identity.erased"  # GDPR art. 17 erasure on request
IDENTITY_PURGED = "identity.purged"  # protocol art. 3: inactive for the retention period
QUALITY_REPORTED = "data_quality.reported"  # protocol art. 7: a report made by staff
QUALITY_READ = "data_quality.read"
QUALITY_EXPORTED = "data_quality.exported"  # disclosed to DOV (the source of the data)
QUALITY_HANDLED = "data_quality.handled"
STAFF_REFUSED = "staff.refused"  # a staff call without the role it needs
PRIVACY_LOG_READ = "privacy_log.read"
PRIVACY_LOG_PRUNED = "privacy_log.pruned"  # entries past their own retention period removed

SYSTEM = "system"


_HEAD = select(PrivacyLogEntry.hash).order_by(PrivacyLogEntry.id.desc()).limit(1)
# The parameters of an entry handed to a database function, typed as the columns are, so that rows()
# runs the columns' own bind processors (UTC, JSON): migrations 0008 and 0009.
ENTRY_PARAMETERS = tuple(
    bindparam(name, type_=PrivacyLogEntry.__table__.c[name].type) for name in ("at", "fields", "data")
)
# PostgreSQL: lock, head, hash and entry in one call (migration 0008).
_LOCKED_APPEND = text(
    "SELECT * FROM leerid_privacy_log_append(:k, :genesis, CAST(:before AS bytea), CAST(:after AS bytea), "
    ":at, :actor, :action, :sub, :fields, :purpose, :request_id, :data)"
).bindparams(*ENTRY_PARAMETERS, bindparam("sub", type_=PrivacyLogEntry.__table__.c.sub.type))
_APPEND = insert(PrivacyLogEntry).returning(PrivacyLogEntry.id)


@dataclass(frozen=True, slots=True)
class Recorded:
    """The entry just appended: its id and its hash (the new head of the chain)."""

    id: int
    hash: str


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """An entry about a pupil whom only the database knows yet (PostgreSQL): a returning pupil's
    login entry, written by the call that reads and updates the identity (migration 0009). ``params``
    are that function's privacy-log parameters; the database puts in the sub and finishes the hash
    from the three parts of the canonical encoding around the previous hash and the sub."""

    params: dict[str, Any]

    def appended(self, sub: uuid.UUID, entry_id: int, prev: str, digest: str) -> Recorded:
        """The entry the database wrote, once its hash is checked to be the chain's: call it before
        the transaction commits (a mismatch fails the transaction, not the chain)."""
        p = self.params
        hashed = p["before"] + prev.encode("ascii") + p["between"] + str(sub).encode("ascii") + p["after"]
        return _checked(entry_id, hashed, digest)


def _values(
    actor: str,
    action: str,
    purpose: str,
    fields: Sequence[str],
    request_id: str | None,
    data: dict[str, Any] | None,
) -> dict[str, Any]:
    """An entry's own values (all but its sub and its place in the chain)."""
    return {
        "at": utcnow(),
        "actor": actor,
        "action": action,
        "fields": list(fields),
        "purpose": purpose[:200],
        "request_id": request_id,
        "data": data,
    }


def _checked(entry_id: int, hashed: bytes, digest: str) -> Recorded:
    """The database finished an entry's hash over ``hashed``: it must be the chain's own (a function
    changed by hand or by a faulty migration would break the chain unseen until the next verify).
    Called before the transaction commits: a mismatch fails the transaction, not the chain."""
    if hashlib.sha256(hashed).hexdigest() != digest:
        raise RuntimeError("the database computed a privacy-log hash that is not the chain's")
    return Recorded(id=entry_id, hash=digest)


def pending(
    *,
    actor: str,
    action: str,
    purpose: str,
    fields: Sequence[str] = (),
    request_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> PendingEntry:
    """``record()``'s entry, for a sub the database will supply (``PendingEntry``)."""
    values = _values(actor, action, purpose, fields, request_id, data)
    before, between, after = (part.encode("utf-8") for part in entry_hash_parts_around_sub(**values))
    return PendingEntry(
        values
        | {"journal_lock_key": JOURNAL_LOCK_KEY, "genesis": GENESIS, "before": before, "between": between}
        | {"after": after}
    )


def staff_actor(name: str) -> str:
    return f"staff:{name}"


async def record(
    session: Db,
    *,
    actor: str,
    action: str,
    purpose: str,
    sub: uuid.UUID | None = None,
    fields: Sequence[str] = (),
    request_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> Recorded:
    """Append one entry, chained to the last. No names and no LeerID keys: ``sub`` is the only
    reference to a pupil.

    The journal lock serialises writers until commit (PostgreSQL; SQLite has one writer), so the
    last hash read here is the one this entry follows. Written at once, so that the next entry of
    the same transaction finds it.
    """
    values = _values(actor, action, purpose, fields, request_id, data) | {"sub": sub}
    if dialect_name(session) == "postgresql":
        # The journal lock, the head and the entry in one call (migration 0008); pending ORM
        # changes first, as journal_lock() does: no row change after the journal lock.
        if isinstance(session, AsyncSession):
            await flush_pending(session)
        before, after = (part.encode("utf-8") for part in entry_hash_parts(**values))
        params = values | {"k": JOURNAL_LOCK_KEY, "genesis": GENESIS, "before": before, "after": after}
        entry_id, prev, digest = (await rows(session, _LOCKED_APPEND, params))[0]
        return _checked(entry_id, before + prev.encode("ascii") + after, digest)
    session = orm(session)
    await journal_lock(session)
    prev = (await (await connection(session)).execute(_HEAD)).scalar()
    values["prev_hash"] = prev or GENESIS
    values["hash"] = entry_hash(**values)
    # Core, not session.add + flush: one INSERT … RETURNING id without the unit-of-work machinery
    # (the login's hot path writes one entry).
    entry_id = (await rows(session, _APPEND, values))[0][0]
    return Recorded(id=entry_id, hash=values["hash"])


def _recomputed(entry: PrivacyLogEntry) -> str:
    return entry_hash(
        entry.prev_hash,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        sub=entry.sub,
        fields=entry.fields,
        purpose=entry.purpose,
        request_id=entry.request_id,
        data=entry.data,
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    checked: int
    head_id: int | None
    head_hash: str | None
    broken_id: int | None = None
    reason: str | None = None


async def verify(session: AsyncSession, *, chunk: int = 1000) -> Verdict:
    """Walk the chain from its anchor to its head; name the first entry that does not fit.

    The anchor is GENESIS, or after pruning the ``anchor`` the latest ``privacy_log.pruned`` entry
    recorded: the oldest remaining entry must continue from it, so removing old entries by hand is
    detected too.
    """
    pruned = await session.scalar(
        select(PrivacyLogEntry)
        .where(PrivacyLogEntry.action == PRIVACY_LOG_PRUNED)
        .order_by(PrivacyLogEntry.id.desc())
        .limit(1)
    )
    anchor = str((pruned.data or {}).get("anchor", "")) if pruned is not None else GENESIS
    expected, last_id, checked, head_hash = anchor, 0, 0, None
    while True:
        rows = list(
            await session.scalars(
                select(PrivacyLogEntry)
                .where(PrivacyLogEntry.id > last_id)
                .order_by(PrivacyLogEntry.id)
                .limit(chunk)
                .execution_options(populate_existing=True)
            )
        )
        for entry in rows:
            if entry.prev_hash != expected:
                reason = (
                    "does not continue from the anchor of the last pruning"
                    if checked == 0
                    else "does not follow the entry before it (an entry was removed or inserted)"
                )
                return Verdict(False, checked, last_id or None, head_hash, entry.id, reason)
            if _recomputed(entry) != entry.hash:
                return Verdict(False, checked, last_id or None, head_hash, entry.id, "was altered")
            expected = head_hash = entry.hash
            last_id = entry.id
            checked += 1
        if len(rows) < chunk:
            return Verdict(True, checked, last_id or None, head_hash)


async def prune(
    session: AsyncSession, *, before: dt.datetime, batch_size: int, below_id: int | None = None
) -> int:
    """Remove up to ``batch_size`` of the oldest entries written before ``before`` (their own
    retention period, protocol art. 6) and record the pruning with the new anchor. The newest entry
    is never removed, so the chain always continues; ``below_id`` bounds a run to the entries that
    existed when it started (its own pruning entries are never its prey)."""
    await journal_lock(session)  # no entry is appended while the anchor is being taken
    newest = await session.scalar(select(func.max(PrivacyLogEntry.id)))
    if newest is None:
        return 0
    bound = newest if below_id is None else min(newest, below_id)
    ids = list(
        await session.scalars(
            select(PrivacyLogEntry.id)
            .where(PrivacyLogEntry.at < before, PrivacyLogEntry.id < bound)
            .order_by(PrivacyLogEntry.id)
            .limit(batch_size)
        )
    )
    if not ids:
        return 0
    await session.execute(delete(PrivacyLogEntry).where(PrivacyLogEntry.id.in_(ids)))
    oldest = (
        await session.execute(
            select(PrivacyLogEntry.id, PrivacyLogEntry.prev_hash).order_by(PrivacyLogEntry.id).limit(1)
        )
    ).one()
    await record(
        session,
        actor=SYSTEM,
        action=PRIVACY_LOG_PRUNED,
        purpose="bewaartermijn van de privacylog verstreken (protocol art. 6)",
        data={
            "removed": len(ids),
            "through_id": ids[-1],
            "first_kept_id": oldest.id,
            "anchor": oldest.prev_hash,
        },
    )
    return len(ids)


async def entries(
    session: AsyncSession,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    sub: uuid.UUID | None = None,
    actor: str | None = None,
    action: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[PrivacyLogEntry]:
    query = select(PrivacyLogEntry).where(PrivacyLogEntry.id > after)
    if start is not None:
        query = query.where(PrivacyLogEntry.at >= start)
    if end is not None:
        query = query.where(PrivacyLogEntry.at < end)
    if sub is not None:
        query = query.where(PrivacyLogEntry.sub == sub)
    if actor is not None:
        query = query.where(PrivacyLogEntry.actor == actor)
    if action is not None:
        query = query.where(PrivacyLogEntry.action == action)
    return list(await session.scalars(query.order_by(PrivacyLogEntry.id).limit(limit)))


@dataclass(frozen=True, slots=True)
class Access:
    actor: str
    sub: uuid.UUID
    action: str
    count: int
    first_at: dt.datetime
    last_at: dt.datetime


async def access_report(
    session: AsyncSession, *, start: dt.datetime, end: dt.datetime, actor: str | None = None
) -> list[Access]:
    """Protocol art. 9 (GDPR art. 33): who touched which pupil's data in [start, end), and how."""
    query = (
        select(
            PrivacyLogEntry.actor,
            PrivacyLogEntry.sub,
            PrivacyLogEntry.action,
            func.count(),
            func.min(PrivacyLogEntry.at),
            func.max(PrivacyLogEntry.at),
        )
        .where(PrivacyLogEntry.at >= start, PrivacyLogEntry.at < end, PrivacyLogEntry.sub.is_not(None))
        .group_by(PrivacyLogEntry.actor, PrivacyLogEntry.sub, PrivacyLogEntry.action)
        .order_by(PrivacyLogEntry.actor, PrivacyLogEntry.sub, PrivacyLogEntry.action)
    )
    if actor is not None:
        query = query.where(PrivacyLogEntry.actor == actor)
    rows = await session.execute(query)
    return [
        Access(a, s, act, int(n), _utc(first), _utc(last))
        for a, s, act, n, first, last in rows
        if s is not None
    ]


def _utc(value: Any) -> dt.datetime:
    """Aggregates bypass the column type on SQLite (a string comes back); normalise to aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
