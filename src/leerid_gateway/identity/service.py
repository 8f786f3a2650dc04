"""Reconciliation: every login's accounts → exactly one identity (the rules of docs/identity.md).

Concurrency: all replicas share PostgreSQL, so mutual exclusion comes from the database. The
invariant is: *whoever changes an identity holds a transaction-level advisory lock on every key of
it* (its ``leer_id_uuid`` and each of its account aliases). A login's own keys are not enough: an
identity found through one alias may have others that a concurrent login, holding a disjoint key
set, is about to merge away. So a reconciliation locks its own keys in sorted order (waiting, as
the first locks of its transaction), reads the identities they lead to, and if those identities
have keys it does not hold yet, takes those *without waiting* and reads again. A transaction only
ever waits for a lock while holding none that sort after it, so two logins never deadlock; if a
lock it did not wait for is taken, the whole transaction is run again (``in_retried_transaction``)
and releases everything first. Locks are released at commit. Unique constraints on
``leer_id_uuid`` and ``account_uuid`` remain the last line of defence, and a violation that slips
through is retried the same way instead of reaching the pupil. SQLite serialises writers itself
(BEGIN IMMEDIATE). No savepoints: the common login pays no round trip for them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast, overload

from sqlalchemy import String, any_, bindparam, delete, insert, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leerid_gateway.db import (
    Db,
    DriverTransaction,
    NeedsSession,
    connection,
    dialect_name,
    driver_transactions,
    driver_unit_of_work,
    flush_pending,
    orm,
    rows,
    unit_of_work,
    utcnow,
)
from leerid_gateway.identity import events
from leerid_gateway.identity.models import AccountAlias, DataQualityReport, Identity
from leerid_gateway.leerid.profile import LeerIdProfile
from leerid_gateway.privacy import service as privacy
from leerid_gateway.sessions import service as sessions
from leerid_gateway.sessions.models import BrowserSession

log = logging.getLogger(__name__)
T = TypeVar("T")

# Keys an earlier attempt of the same transaction found it needed: the next attempt waits for them
# in order from the start, so contention on the same identity cannot repeat.
_keys_learnt: ContextVar[frozenset[str]] = ContextVar("keys_learnt", default=frozenset())
_in_retried_transaction: ContextVar[bool] = ContextVar("in_retried_transaction", default=False)

# A unique violation or deadlock can only reach here if the locking above has a hole; retrying
# from a fresh read is then correct (the other login's rows are committed and will be found).
_ATTEMPTS = 8
# Each round adds at least one key of the pupil's connected identities; this only bounds a
# pathological stream of concurrent changes.
_MAX_LOCK_ROUNDS = 20
_RETRYABLE_SQLSTATES = frozenset({"23505", "40P01", "40001"})

ACCOUNT_IN_TWO_PUPILS = "account_in_two_pupils"


@dataclass(slots=True)
class Reconciliation:
    """What one login did to the identities; and whether the reconciliation's own call also wrote
    the login's privacy-log entry and session (``appended``), which the caller then does not."""

    identity: IdentityRecord
    created: bool = False
    identified: bool = False
    merged_subs: list[uuid.UUID] = field(default_factory=list)
    conflicts: int = 0
    # The login's privacy-log entry, its hash checked to be the chain's, when the reconciliation's own
    # call wrote it and the session (a returning pupil's login on PostgreSQL, ``LoginWrites``).
    appended: privacy.Recorded | None = None


@dataclass(frozen=True, slots=True)
class LoginWrites:
    """What a login writes besides the identity: its privacy-log entry (``privacy.pending``) and its
    session (``sessions.NewSession``). On PostgreSQL they go with every call of the
    reconciliation, which writes them itself when the login changes nothing but the attributes
    (migration 0009); otherwise the caller writes them after ``reconcile()``. The times in them are
    the admission's start: the moment before any lock was waited for."""

    entry: privacy.PendingEntry
    session: sessions.NewSession


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


def _is_postgres(session: Db) -> bool:
    return dialect_name(session) == "postgresql"


_LOCK_KEYS = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k")


async def lock_keys(session: Db, keys: Iterable[str]) -> None:
    """Advisory locks on ``keys`` in sorted order (PostgreSQL only; held until the transaction ends)."""
    if not _is_postgres(session):
        return
    ordered = sorted({_lock_key(k) for k in keys})
    # One round trip for all of them: unnest() yields the array in order, and a function scan
    # feeds the locks one by one in that order, so the sorted-order rule (no deadlock) holds.
    await rows(session, _LOCK_KEYS, {"keys": ordered})


# The statements of a reconciliation, built once (building one costs more CPU than running it).
def _owners_of_keys(accounts: Any) -> tuple[Any, Any]:
    """Who owns these accounts; and who owns them or this leer_id_uuid. A UNION of two index lookups,
    not `id IN (…) OR leer_id_uuid = …`: PostgreSQL cannot use an index for that OR and walks the
    whole table (docs/performance.md, "reconciliation at scale")."""
    owners_of_accounts = select(AccountAlias.identity_id).where(accounts)
    by_leer_id = select(Identity.id).where(Identity.leer_id_uuid == bindparam("leer_id_uuid"))
    return owners_of_accounts, owners_of_accounts.union(by_leer_id)


# PostgreSQL takes the accounts as one array parameter: an expanding IN is rewritten by SQLAlchemy
# on every execution (2.7 % of a login's CPU); SQLite has no arrays.
_OWNERS = {
    "postgresql": _owners_of_keys(
        AccountAlias.account_uuid == any_(bindparam("accounts", type_=postgresql.ARRAY(String)))
    ),
    "sqlite": _owners_of_keys(AccountAlias.account_uuid.in_(bindparam("accounts", expanding=True))),
}


_IDENTITY_COLUMNS = (
    Identity.id,
    Identity.sub,
    Identity.leer_id_uuid,
    Identity.given_name,
    Identity.family_name,
    Identity.school_code,
    Identity.school_name,
    Identity.created_at,
    Identity.last_login_at,
)


@dataclass(slots=True)
class IdentityRecord:
    """An identity as reconciliation read and wrote it: a detached snapshot (the columns of
    ``_IDENTITY_COLUMNS``, in that order), not an ORM object, so nothing is flushed behind our back
    and nothing loaded earlier in the session can be stale."""

    id: int
    sub: uuid.UUID
    leer_id_uuid: str | None
    given_name: str
    family_name: str
    school_code: str | None
    school_name: str | None
    created_at: dt.datetime
    last_login_at: dt.datetime

    @property
    def temporary(self) -> bool:
        """An identity without leer_id_uuid rests on a temporary account (protocol art. 3)."""
        return self.leer_id_uuid is None


def _find(owners: Any) -> Any:
    # Each identity with every one of its aliases (one row per alias): the candidates, the keys
    # they hold (the lock closure) and who owns this login's accounts, in one round trip. Core rows,
    # not ORM entities (IdentityRecord): building ORM instances was 8 % of an admission's CPU.
    return (
        select(*_IDENTITY_COLUMNS, AccountAlias.account_uuid)
        .outerjoin(AccountAlias, AccountAlias.identity_id == Identity.id)
        .where(Identity.id.in_(owners))
        .order_by(Identity.id)
    )


# dialect → (by accounts, by accounts or leer_id_uuid)
_FIND = {dialect: (_find(by_accounts), _find(by_keys)) for dialect, (by_accounts, by_keys) in _OWNERS.items()}


@dataclass(slots=True)
class _Found:
    """The identities a login's keys lead to (oldest first) and every account alias they hold."""

    identities: list[IdentityRecord]
    aliases: dict[str, int]  # account_uuid → identity id


async def _find_with_aliases(session: Db, profile: LeerIdProfile) -> _Found:
    params: dict[str, Any] = {"accounts": list(profile.all_account_uuids)}
    by_accounts, by_keys = _FIND[dialect_name(session)]
    statement = by_accounts
    if profile.leer_id_uuid is not None:
        statement, params["leer_id_uuid"] = by_keys, profile.leer_id_uuid
    return _found(await rows(session, statement, params))


# PostgreSQL: the keys locked, the identities read and, for a returning pupil, the login written, in
# one call (migration 0009). The parameters are typed as the columns are, so that rows() runs the
# columns' own bind processors (UTC, JSON).
_ADMISSION = text(
    "SELECT * FROM leerid_login_admission("
    "CAST(:lock_keys AS bigint[]), :wait, "
    "CAST(:held_accounts AS varchar[]), CAST(:held_leer_ids AS varchar[]), "
    "CAST(:accounts AS varchar[]), CAST(:leer_id AS varchar), :admit, "
    ":given_name, :family_name, :school_code, :school_name, :now, "
    ":journal_lock_key, :genesis, CAST(:before AS bytea), CAST(:between AS bytea), CAST(:after AS bytea), "
    ":at, :actor, :action, :fields, :purpose, :request_id, :data, "
    ":session_id, CAST(:secret_hash AS bytea), :session_at, :absolute_expires_at)"
).bindparams(
    bindparam("now", type_=Identity.__table__.c.last_login_at.type),
    bindparam("session_at", type_=BrowserSession.__table__.c.created_at.type),
    bindparam("absolute_expires_at", type_=BrowserSession.__table__.c.absolute_expires_at.type),
    *privacy.ENTRY_PARAMETERS,
)
# Without a login to write, every parameter of the login's writes is NULL.
_NO_WRITES = dict.fromkeys(
    (
        *("given_name", "family_name", "school_code", "school_name", "now"),
        *("journal_lock_key", "genesis", "before", "between", "after"),
        *("at", "actor", "action", "fields", "purpose", "request_id", "data"),
        *("session_id", "secret_hash", "session_at", "absolute_expires_at"),
    )
)
_ACCOUNT_KEY, _LEER_ID_KEY = _account_key(""), _leer_id_key("")


@dataclass(slots=True)
class _Call:
    """One call of the admission function: contended, or what it read, and what it wrote if anything."""

    contended: bool = False
    found: _Found = field(default_factory=lambda: _Found(identities=[], aliases={}))
    admitted: Reconciliation | None = None


async def _admission_call(
    session: Db,
    profile: LeerIdProfile,
    *,
    lock: Iterable[str],
    wait: bool,
    held: frozenset[str],
    writes: LoginWrites | None,
    written: Mapping[str, Any],
) -> _Call:
    """Lock ``lock`` (waiting in order, or without waiting), then read the identities the login's
    keys lead to; with ``writes``, admit a returning pupil in the same call (migration 0009)."""
    params: dict[str, Any] = {
        "lock_keys": sorted({_lock_key(k) for k in lock}),
        "wait": wait,
        "held_accounts": [k[len(_ACCOUNT_KEY) :] for k in held if k.startswith(_ACCOUNT_KEY)],
        "held_leer_ids": [k[len(_LEER_ID_KEY) :] for k in held if k.startswith(_LEER_ID_KEY)],
        "accounts": list(profile.all_account_uuids),
        "leer_id": profile.leer_id_uuid,
        "admit": writes is not None,
    }
    params.update(written)
    call = _Call()
    found_rows = []
    for outcome, *columns, account, entry_id, prev, digest in await rows(session, _ADMISSION, params):
        if outcome == "found":
            found_rows.append((*columns, account))
        elif outcome == "admitted":
            assert writes is not None
            identity = IdentityRecord(*columns)
            # Before the transaction can commit: a hash that is not the chain's fails it (migration 0009).
            appended = writes.entry.appended(identity.sub, entry_id, prev, digest)
            call.admitted = Reconciliation(identity=identity, appended=appended)
        else:
            call.contended = True
    call.found = _found(found_rows)
    return call


def _found(found_rows: Iterable[Sequence[Any]]) -> _Found:
    """Rows of ``_IDENTITY_COLUMNS`` + an account alias, ordered by identity id."""
    found = _Found(identities=[], aliases={})
    for *columns, account in found_rows:
        if not found.identities or found.identities[-1].id != columns[0]:
            found.identities.append(IdentityRecord(*columns))
        if account is not None:
            found.aliases[account] = columns[0]
    return found


async def find_identities(session: Db, profile: LeerIdProfile) -> list[IdentityRecord]:
    """Every identity this login's keys point at: by leer_id_uuid and by any account alias."""
    return (await _find_with_aliases(session, profile)).identities


async def reconcile(
    session: Db,
    profile: LeerIdProfile,
    *,
    school_code: str | None = None,
    school_name: str | None = None,
    then: LoginWrites | None = None,
) -> Reconciliation:
    """Map one login onto one identity, creating, identifying or merging as the rules demand.

    Rules (docs/identity.md): (1) key by leer_id_uuid, else by the temporary account_uuid;
    (2) every account_uuid is an alias of exactly one identity; (3) identification upgrades a
    temporary identity in place; (4) several identities of one pupil merge into one survivor —
    the identified one, else the oldest; (5) two identified identities never merge: a
    data-quality report is filed instead; (6) the latest login's attributes overwrite.

    Run it through ``in_retried_transaction``: on PostgreSQL it raises ``Contended`` when another
    login holds a key it must take without waiting, and only a fresh transaction can go on.

    ``then``: the login's other writes. On PostgreSQL, when the login changes nothing but the
    attributes (a returning pupil, most logins), the call that locks and reads writes them too, the
    entry's hash is checked, and the result's ``appended`` says so (migration 0009); otherwise they
    are the caller's to write.
    """
    if not _is_postgres(session):
        # SQLite serialises writers (BEGIN IMMEDIATE): no locks, and the login writes the rest itself.
        found = await _find_with_aliases(session, profile)
        return await _apply(session, profile, found, school_code, school_name)
    keys = _profile_keys(profile) | _keys_learnt.get()
    written: dict[str, Any] = _NO_WRITES
    if then is not None:
        if isinstance(session, AsyncSession):
            await flush_pending(session)  # no row change after the journal lock (privacy.record)
        written = {
            "given_name": profile.given_name,
            "family_name": profile.family_name,
            "school_code": school_code,
            "school_name": school_name,
            "now": utcnow(),
            "session_id": then.session.sid,
            "secret_hash": then.session.secret_hash,
            "session_at": then.session.created_at,
            "absolute_expires_at": then.session.absolute_expires_at,
        } | then.entry.params
    # Lock (waiting, in order) and read in one call; a returning pupil is admitted by that call.
    call = await _admission_call(
        session, profile, lock=keys, wait=True, held=keys, writes=then, written=written
    )
    for round_ in range(1, _MAX_LOCK_ROUNDS + 1):
        if call.admitted is not None:
            return call.admitted
        missing = _keys_of(call.found) - keys
        if not missing:
            return await _apply(session, profile, call.found, school_code, school_name)
        if round_ == _MAX_LOCK_ROUNDS:
            break
        # The identities found hold keys we do not: take those without waiting (waiting while
        # holding keys out of the global order could deadlock), then read again under them.
        call = await _admission_call(
            session, profile, lock=missing, wait=False, held=keys | missing, writes=then, written=written
        )
        if call.contended:
            raise Contended(keys | missing)
        keys |= missing
    raise RuntimeError("identity keys kept changing while reconciling")


class Contended(Exception):
    """Another transaction is changing an identity this login leads to. Roll back and run the
    whole transaction again (``in_retried_transaction``): it then waits for its keys in order."""

    def __init__(self, keys: frozenset[str]) -> None:
        super().__init__(len(keys))
        self.keys = keys


@overload
async def in_retried_transaction(
    factory: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    on_driver: Literal[False] = False,
) -> T: ...


@overload
async def in_retried_transaction(
    factory: async_sessionmaker[AsyncSession], work: Callable[[Db], Awaitable[T]], *, on_driver: Literal[True]
) -> T: ...


async def in_retried_transaction(
    factory: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]] | Callable[[Db], Awaitable[T]],
    *,
    on_driver: bool = False,
) -> T:
    """Run ``work`` in one transaction; run it again, in a fresh one, when it was Contended or hit a
    unique violation or deadlock (the last line of defence: the locks should make those impossible,
    and a fresh read then finds the other transaction's committed rows). A transaction holds no
    state outside the database, so running it again is exactly as if the first never happened.

    ``on_driver``: ``work`` takes a ``Db`` and is first run on a ``DriverTransaction`` where the
    engine allows it (``db.driver_transactions``: PostgreSQL, no tracing); when it needs the
    Session (``NeedsSession``), it is run again at once in a Session's transaction, and so are its
    further attempts. The login's admission: a returning pupil's login needs no Session.

    Never nested: an inner call would open a second connection while the outer transaction holds
    advisory locks, and could wait for one of them, a wait PostgreSQL cannot see as a deadlock.
    """
    if _in_retried_transaction.get():
        raise RuntimeError("in_retried_transaction() must not be nested")
    running = _in_retried_transaction.set(True)
    learnt = _keys_learnt.set(frozenset())
    try:
        return await _attempts(factory, cast(Callable[[Db], Awaitable[T]], work), on_driver)
    finally:
        _keys_learnt.reset(learnt)
        _in_retried_transaction.reset(running)


async def _attempts(
    factory: async_sessionmaker[AsyncSession], work: Callable[[Db], Awaitable[T]], on_driver: bool
) -> T:
    engine = factory.kw["bind"] if on_driver else None
    on_driver = engine is not None and driver_transactions(engine)
    attempt = 0
    while attempt < _ATTEMPTS:
        attempt += 1
        try:
            if on_driver and engine is not None:
                async with driver_unit_of_work(engine) as transaction:
                    return await work(transaction)
            async with unit_of_work(factory) as session:
                return await work(session)
        except NeedsSession:
            if not on_driver:
                raise
            on_driver, attempt = False, attempt - 1  # not a race: no back-off, not an attempt
            continue
        except Contended as contended:
            if attempt == _ATTEMPTS:
                raise
            _keys_learnt.set(_keys_learnt.get() | contended.keys)
        except DBAPIError as exc:
            if attempt == _ATTEMPTS or not _retryable(exc):
                raise
            log.warning("reconciliation retried after %s (a gap in the key locking?)", _sqlstate(exc))
        await asyncio.sleep(random.uniform(0.002, 0.01) * attempt)  # noqa: S311 — jitter, not security
    raise AssertionError("unreachable")


def _keys_of(found: _Found) -> frozenset[str]:
    keys = {_account_key(a) for a in found.aliases}
    keys.update(_leer_id_key(c.leer_id_uuid) for c in found.identities if c.leer_id_uuid is not None)
    return frozenset(keys)


def _profile_keys(profile: LeerIdProfile) -> frozenset[str]:
    keys = {_account_key(a) for a in profile.all_account_uuids}
    if profile.leer_id_uuid is not None:
        keys.add(_leer_id_key(profile.leer_id_uuid))
    return frozenset(keys)


def _sqlstate(exc: DBAPIError) -> str | None:
    orig: Any = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(code) if code is not None else None


def _retryable(exc: DBAPIError) -> bool:
    # Unique violation, deadlock, serialization failure: a race the locks should have prevented. Not
    # any IntegrityError: a not-null or check violation (bad data) would fail the same way again.
    return _sqlstate(exc) in _RETRYABLE_SQLSTATES


async def _apply(
    session: Db,
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

    own: IdentityRecord | None
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
        # Written below with the other attributes; its id comes from the INSERT.
        new = IdentityRecord(
            id=0,
            sub=uuid.uuid4(),
            leer_id_uuid=profile.leer_id_uuid,
            given_name=profile.given_name,
            family_name=profile.family_name,
            school_code=None,
            school_name=None,
            created_at=now,
            last_login_at=now,
        )
        outcome = Reconciliation(identity=new, created=True)
    survivor = outcome.identity
    # Rule 5: identified pupils other than the survivor are never merged into it.
    foreign = {i.id: i for i in identified if i.id != survivor.id}
    victims = [i for i in temporaries if i.id != survivor.id]
    if isinstance(session, DriverTransaction) and (
        outcome.created
        or outcome.identified
        or victims
        or any(alias_owner.get(a) is None or alias_owner[a] in foreign for a in profile.all_account_uuids)
    ):
        # Events, merges, new aliases, reports: the Session's work (most logins do none of it).
        # Before anything is written: the transaction is run again in a Session (NeedsSession).
        orm(session)

    # Rule 6: the latest login's attributes, nothing else.
    survivor.given_name = profile.given_name
    survivor.family_name = profile.family_name
    survivor.school_code = school_code
    survivor.school_name = school_name
    survivor.last_login_at = now
    values = {name: getattr(survivor, name) for name in _WRITTEN}
    if outcome.created:
        inserted = values | {"sub": survivor.sub, "created_at": survivor.created_at}
        survivor.id = (await rows(session, _INSERT_IDENTITY, inserted))[0][0]
    else:
        await rows(session, _UPDATE_IDENTITY, values | {"identity_id": survivor.id})

    for victim in victims:
        await _merge(orm(session), victim, survivor)
        outcome.merged_subs.append(victim.sub)

    # Rule 2: claim every account of this login that nobody owns yet; an account owned by another
    # identified pupil stays theirs and is reported to DOV (rule 5, protocol art. 7).
    claimed = []
    for account in profile.all_account_uuids:
        owner = alias_owner.get(account)
        if owner is None:
            claimed.append({"account_uuid": account, "identity_id": survivor.id, "created_at": now})
        elif owner in foreign:
            outcome.conflicts += 1
            await _report_conflict(orm(session), account, survivor, foreign[owner], now)
    if claimed:  # several rows at once (executemany): through SQLAlchemy
        await (await connection(orm(session))).execute(_INSERT_ALIAS, claimed)

    # Events last: emit() takes the outbox lock, held until commit; nothing may wait after it.
    if outcome.created:
        await events.emit(orm(session), events.CREATED, survivor.sub, {"temporary": survivor.temporary})
    if outcome.identified:
        await events.emit(orm(session), events.IDENTIFIED, survivor.sub)
    for sub in outcome.merged_subs:
        merged = {"from": str(sub), "into": str(survivor.sub)}
        await events.emit(orm(session), events.MERGED, survivor.sub, merged)
    if isinstance(session, AsyncSession) and session.new:  # reports and events (rare)
        await session.flush()
    return outcome


# The columns a login writes (rule 6, and leer_id_uuid for rule 3); statements built once.
_WRITTEN = ("leer_id_uuid", "given_name", "family_name", "school_code", "school_name", "last_login_at")
_INSERT_IDENTITY = insert(Identity).returning(Identity.id)
_UPDATE_IDENTITY = update(Identity).where(Identity.id == bindparam("identity_id"))
_INSERT_ALIAS = insert(AccountAlias)


async def _merge(session: AsyncSession, victim: IdentityRecord, survivor: IdentityRecord) -> None:
    """Rule 4: move the victim's aliases to the survivor and retire the victim's sub.

    Deleting the victim cascades to its sessions, so its tokens introspect ``active: false``.
    """
    await session.execute(
        update(AccountAlias).where(AccountAlias.identity_id == victim.id).values(identity_id=survivor.id)
    )
    await session.execute(delete(Identity).where(Identity.id == victim.id))


async def _report_conflict(
    session: AsyncSession, account: str, survivor: IdentityRecord, other: IdentityRecord, now: dt.datetime
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
