"""Reconciliation: every login's accounts → exactly one identity (the rules of docs/identity.md).

Concurrency: all replicas share PostgreSQL, so mutual exclusion comes from the database. The
invariant is: *whoever changes an identity holds a transaction-level advisory lock on every key of
it* (its ``leer_id_uuid`` and each of its account aliases). A login's own keys are not enough: an
identity found through one alias may have others that a concurrent login, holding a disjoint key
set, is about to merge away. So a reconciliation locks its keys in sorted order inside a savepoint,
reads the identities they lead to, and if those identities have keys it does not hold yet, rolls
back to the savepoint (which releases the locks) and starts again with the larger key set, still
in sorted order. Locks are always taken in one global order, so two logins never deadlock; they are
released at commit. Unique constraints on ``leer_id_uuid`` and ``account_uuid`` remain the last line
of defence, and a violation that slips through is retried instead of reaching the pupil. SQLite
serialises writers itself (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.db import utcnow
from leerid_gateway.identity import events
from leerid_gateway.identity.models import AccountAlias, DataQualityReport, Identity
from leerid_gateway.leerid.profile import LeerIdProfile

log = logging.getLogger(__name__)

# A unique violation or deadlock can only reach here if the locking above has a hole; retrying
# from a fresh read is then correct (the other login's rows are committed and will be found).
_ATTEMPTS = 3
# Each round adds at least one key of the pupil's connected identities; this only bounds a
# pathological stream of concurrent changes.
_MAX_LOCK_ROUNDS = 20
_RETRYABLE_SQLSTATES = frozenset({"23505", "40P01", "40001"})

ACCOUNT_IN_TWO_PUPILS = "account_in_two_pupils"


@dataclass(slots=True)
class Reconciliation:
    """What one login did to the identities; the caller decides nothing from it but logging."""

    identity: Identity
    created: bool = False
    identified: bool = False
    merged_subs: list[uuid.UUID] = field(default_factory=list)
    conflicts: int = 0


class _KeysGrew(Exception):
    """The identities found have keys this attempt does not hold; start over holding them too."""

    def __init__(self, keys: frozenset[str]) -> None:
        super().__init__(len(keys))
        self.keys = keys


def _lock_key(value: str) -> int:
    # A signed 64-bit key for pg_advisory_xact_lock from a namespaced hash of the LeerID key.
    digest = hashlib.blake2b(b"leerid-identity:" + value.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _account_key(account_uuid: str) -> str:
    return "account:" + account_uuid


def _leer_id_key(leer_id_uuid: str) -> str:
    return "leer_id:" + leer_id_uuid


def lock_order(account_uuids: Iterable[str], leer_id_uuid: str | None) -> list[int]:
    """The advisory-lock keys of an identity with these keys, in the order every writer takes them.

    Anything that changes an identity outside a login (erasure, the purge) must lock exactly these.
    """
    keys = {_account_key(a) for a in account_uuids}
    if leer_id_uuid is not None:
        keys.add(_leer_id_key(leer_id_uuid))
    return sorted({_lock_key(k) for k in keys})


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


_LOCK_KEYS = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k")


async def lock_keys(session: AsyncSession, keys: Iterable[str]) -> None:
    """Advisory locks on ``keys`` in sorted order (PostgreSQL only; held until the transaction ends)."""
    if not _is_postgres(session):
        return
    ordered = sorted({_lock_key(k) for k in keys})
    # One round trip for all of them: unnest() yields the array in order, and a function scan
    # feeds the locks one by one in that order, so the sorted-order rule (no deadlock) holds.
    await (await session.connection()).execute(_LOCK_KEYS, {"keys": ordered})


# The statements of a reconciliation, built once (building one costs more CPU than running it).
_OWNERS_OF_ACCOUNTS = select(AccountAlias.identity_id).where(
    AccountAlias.account_uuid.in_(bindparam("accounts", expanding=True))
)
# A UNION of two index lookups, not `id IN (…) OR leer_id_uuid = …`: PostgreSQL cannot use an index
# for that OR and walks the whole table (docs/performance.md, "reconciliation at scale").
_OWNERS_OF_KEYS = _OWNERS_OF_ACCOUNTS.union(
    select(Identity.id).where(Identity.leer_id_uuid == bindparam("leer_id_uuid"))
)


def _find(owners: Any) -> Any:
    # Each identity with every one of its aliases (one row per alias): the candidates, the keys
    # they hold (the lock closure) and who owns this login's accounts, in one round trip.
    # populate_existing: rows read after taking the locks must win over anything this session
    # loaded earlier in the transaction (READ COMMITTED sees other logins' commits).
    return (
        select(Identity, AccountAlias.account_uuid)
        .outerjoin(AccountAlias, AccountAlias.identity_id == Identity.id)
        .where(Identity.id.in_(owners))
        .order_by(Identity.id)
        .execution_options(populate_existing=True)
    )


_FIND_BY_ACCOUNTS = _find(_OWNERS_OF_ACCOUNTS)
_FIND_BY_KEYS = _find(_OWNERS_OF_KEYS)


@dataclass(slots=True)
class _Found:
    """The identities a login's keys lead to (oldest first) and every account alias they hold."""

    identities: list[Identity]
    aliases: dict[str, int]  # account_uuid → identity id


async def _find_with_aliases(session: AsyncSession, profile: LeerIdProfile) -> _Found:
    params: dict[str, Any] = {"accounts": list(profile.all_account_uuids)}
    statement = _FIND_BY_ACCOUNTS
    if profile.leer_id_uuid is not None:
        statement, params["leer_id_uuid"] = _FIND_BY_KEYS, profile.leer_id_uuid
    found = _Found(identities=[], aliases={})
    for identity, account in await session.execute(statement, params):
        if not found.identities or found.identities[-1] is not identity:
            found.identities.append(identity)
        if account is not None:
            found.aliases[account] = identity.id
    return found


async def find_identities(session: AsyncSession, profile: LeerIdProfile) -> list[Identity]:
    """Every identity this login's keys point at: by leer_id_uuid and by any account alias."""
    return (await _find_with_aliases(session, profile)).identities


async def reconcile(
    session: AsyncSession,
    profile: LeerIdProfile,
    *,
    school_code: str | None = None,
    school_name: str | None = None,
) -> Reconciliation:
    """Map one login onto one identity, creating, identifying or merging as the rules demand.

    Rules (docs/identity.md): (1) key by leer_id_uuid, else by the temporary account_uuid;
    (2) every account_uuid is an alias of exactly one identity; (3) identification upgrades a
    temporary identity in place; (4) several identities of one pupil merge into one survivor —
    the identified one, else the oldest; (5) two identified identities never merge: a
    data-quality report is filed instead; (6) the latest login's attributes overwrite.
    """
    keys = _profile_keys(profile)
    attempt = rounds = 0
    while True:
        try:
            async with session.begin_nested():
                found = await _lock_and_find(session, profile, keys)
                return await _apply(session, profile, found, school_code, school_name)
        except _KeysGrew as grew:
            rounds += 1
            if rounds >= _MAX_LOCK_ROUNDS:
                raise RuntimeError("identity keys kept changing while reconciling") from None
            keys = grew.keys
        except DBAPIError as exc:
            attempt += 1
            if attempt >= _ATTEMPTS or not _retryable(exc):
                raise
            log.warning("reconcile retried after %s (a gap in the key locking?)", _sqlstate(exc))


def _profile_keys(profile: LeerIdProfile) -> frozenset[str]:
    keys = {_account_key(a) for a in profile.all_account_uuids}
    if profile.leer_id_uuid is not None:
        keys.add(_leer_id_key(profile.leer_id_uuid))
    return frozenset(keys)


async def _lock_and_find(session: AsyncSession, profile: LeerIdProfile, keys: frozenset[str]) -> _Found:
    """Lock ``keys``, then read the candidates; raise _KeysGrew unless we hold all their keys."""
    await lock_keys(session, keys)
    found = await _find_with_aliases(session, profile)
    if not _is_postgres(session) or not found.identities:
        return found
    closure = {_account_key(a) for a in found.aliases}
    closure.update(_leer_id_key(c.leer_id_uuid) for c in found.identities if c.leer_id_uuid is not None)
    if not closure <= keys:
        raise _KeysGrew(keys | closure)
    return found


def _sqlstate(exc: DBAPIError) -> str | None:
    orig: Any = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(code) if code is not None else None


def _retryable(exc: DBAPIError) -> bool:
    return isinstance(exc, IntegrityError) or _sqlstate(exc) in _RETRYABLE_SQLSTATES


async def _apply(
    session: AsyncSession,
    profile: LeerIdProfile,
    found: _Found,
    school_code: str | None,
    school_name: str | None,
) -> Reconciliation:
    """The rules themselves, on candidates read under locks covering all their keys."""
    candidates, alias_owner = found.identities, found.aliases
    now = utcnow()
    identified = [i for i in candidates if i.leer_id_uuid is not None]
    temporaries = [i for i in candidates if i.leer_id_uuid is None]  # oldest first (by id)

    own: Identity | None
    if profile.leer_id_uuid is not None:
        own = next((i for i in identified if i.leer_id_uuid == profile.leer_id_uuid), None)
    else:
        # An unidentified login whose accounts lead to identified pupils belongs to the owner of
        # its current account if that is one of them, else to the oldest of them.
        owner_id = alias_owner.get(profile.account_uuid)
        own = next((i for i in identified if i.id == owner_id), identified[0] if identified else None)

    if own is not None:
        outcome = Reconciliation(identity=own)
    elif temporaries:
        # Rule 4's survivor among temporaries: the oldest; rule 3: identification keeps the sub.
        outcome = Reconciliation(identity=temporaries[0])
        if profile.leer_id_uuid is not None:
            outcome.identity.leer_id_uuid = profile.leer_id_uuid
            outcome.identified = True
    else:
        new = Identity(
            sub=uuid.uuid4(),
            leer_id_uuid=profile.leer_id_uuid,
            given_name=profile.given_name,
            family_name=profile.family_name,
            created_at=now,
            last_login_at=now,
        )
        session.add(new)
        outcome = Reconciliation(identity=new, created=True)
    survivor = outcome.identity
    # Rule 5: identified pupils other than the survivor are never merged into it.
    foreign = {i.id: i for i in identified if i.id != survivor.id}

    # Rule 6: the latest login's attributes, nothing else.
    survivor.given_name = profile.given_name
    survivor.family_name = profile.family_name
    survivor.school_code = school_code
    survivor.school_name = school_name
    survivor.last_login_at = now
    await session.flush()

    victims = [i for i in temporaries if i.id != survivor.id]
    for victim in victims:
        await _merge(session, victim, survivor)
        outcome.merged_subs.append(victim.sub)

    # Rule 2: claim every account of this login that nobody owns yet; an account owned by another
    # identified pupil stays theirs and is reported to DOV (rule 5, protocol art. 7).
    for account in profile.all_account_uuids:
        owner = alias_owner.get(account)
        if owner is None:
            session.add(AccountAlias(account_uuid=account, identity_id=survivor.id, created_at=now))
        elif owner in foreign:
            outcome.conflicts += 1
            await _report_conflict(session, account, survivor, foreign[owner], now)
    await session.flush()

    # Events last: emit() takes the outbox lock, held until commit; nothing may wait after it.
    if outcome.created:
        await events.emit(session, events.CREATED, survivor.sub, {"temporary": survivor.temporary})
    if outcome.identified:
        await events.emit(session, events.IDENTIFIED, survivor.sub)
    for sub in outcome.merged_subs:
        await events.emit(session, events.MERGED, survivor.sub, {"from": str(sub), "into": str(survivor.sub)})
    await session.flush()
    return outcome


async def _merge(session: AsyncSession, victim: Identity, survivor: Identity) -> None:
    """Rule 4: move the victim's aliases to the survivor and retire the victim's sub.

    Deleting the victim cascades to its sessions, so its tokens introspect ``active: false``.
    """
    await session.execute(
        update(AccountAlias).where(AccountAlias.identity_id == victim.id).values(identity_id=survivor.id)
    )
    await session.execute(delete(Identity).where(Identity.id == victim.id))


async def _report_conflict(
    session: AsyncSession, account: str, survivor: Identity, other: Identity, now: dt.datetime
) -> None:
    """Protocol art. 7: one open report per (account, pupils), however often they log in."""
    subs = sorted([str(survivor.sub), str(other.sub)])
    open_reports = await session.scalars(
        select(DataQualityReport).where(
            DataQualityReport.kind == ACCOUNT_IN_TWO_PUPILS,
            DataQualityReport.account_uuid == account,
            DataQualityReport.handled_at.is_(None),
        )
    )
    if any(sorted(r.subs) == subs for r in open_reports):
        return
    session.add(
        DataQualityReport(
            kind=ACCOUNT_IN_TWO_PUPILS,
            subs=subs,
            account_uuid=account,
            detail="An account_uuid is listed for two pupils with different leer_id_uuid; "
            "the identities were kept apart and the account stays with its first owner.",
            created_at=now,
        )
    )
