"""Reconciliation: every login's accounts → exactly one identity (the rules of docs/identity.md).

Concurrency: all replicas share PostgreSQL, so mutual exclusion comes from the database. Before
reading, a reconciliation takes transaction-level advisory locks on every key it will look up
(its leer_id_uuid and each account_uuid), in sorted order so two overlapping logins can never
deadlock; the locks are released at commit. Unique constraints on ``leer_id_uuid`` and
``account_uuid`` remain the last line of defence. SQLite serialises writers itself (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.db import utcnow
from leerid_gateway.identity import events
from leerid_gateway.identity.models import AccountAlias, DataQualityReport, Identity
from leerid_gateway.leerid.profile import LeerIdProfile


@dataclass(slots=True)
class Reconciliation:
    """What one login did to the identities; the caller decides nothing from it but logging."""

    identity: Identity
    created: bool = False
    identified: bool = False
    merged_subs: list[uuid.UUID] = field(default_factory=list)
    conflicts: int = 0


def _lock_key(value: str) -> int:
    # A signed 64-bit key for pg_advisory_xact_lock from a namespaced hash of the LeerID key.
    digest = hashlib.blake2b(b"leerid-identity:" + value.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_keys(session: AsyncSession, keys: Iterable[str]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted({_lock_key(k) for k in keys}):
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


async def find_identities(session: AsyncSession, profile: LeerIdProfile) -> list[Identity]:
    """Every identity this login's keys point at: by leer_id_uuid and by any account alias."""
    accounts = profile.all_account_uuids
    by_alias = select(AccountAlias.identity_id).where(AccountAlias.account_uuid.in_(accounts))
    condition: ColumnElement[bool] = Identity.id.in_(by_alias)
    if profile.leer_id_uuid is not None:
        condition = condition | (Identity.leer_id_uuid == profile.leer_id_uuid)
    result = await session.scalars(select(Identity).where(condition).order_by(Identity.id))
    return list(result)


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
    keys = list(profile.all_account_uuids)
    if profile.leer_id_uuid is not None:
        keys.append("leer_id:" + profile.leer_id_uuid)
    await lock_keys(session, keys)

    candidates = await find_identities(session, profile)
    alias_owner = await _alias_owners(session, profile.all_account_uuids)
    now = utcnow()
    outcome: Reconciliation

    if profile.leer_id_uuid is not None:
        own = next((i for i in candidates if i.leer_id_uuid == profile.leer_id_uuid), None)
        foreign = [i for i in candidates if i.leer_id_uuid not in (None, profile.leer_id_uuid)]
        temporaries = [i for i in candidates if i.leer_id_uuid is None]
    else:
        identified = [i for i in candidates if i.leer_id_uuid is not None]
        # An unidentified login normally points at one identity at most; if its accounts point at
        # an identified pupil, that pupil is the owner of the current account (or the oldest one).
        own_id = alias_owner.get(profile.account_uuid)
        own = next((i for i in identified if i.id == own_id), None) or (identified[0] if identified else None)
        foreign = [i for i in identified if own is not None and i.id != own.id]
        temporaries = [i for i in candidates if i.leer_id_uuid is None]

    if own is not None:
        outcome = Reconciliation(identity=own)
    elif temporaries:
        # Rule 4's survivor among temporaries: the oldest (smallest id = created first).
        survivor = temporaries[0]
        outcome = Reconciliation(identity=survivor)
        if profile.leer_id_uuid is not None:
            survivor.leer_id_uuid = profile.leer_id_uuid  # rule 3: upgrade in place, same sub
            outcome.identified = True
    else:
        survivor = Identity(
            sub=uuid.uuid4(),
            leer_id_uuid=profile.leer_id_uuid,
            given_name=profile.given_name,
            family_name=profile.family_name,
            created_at=now,
            last_login_at=now,
        )
        session.add(survivor)
        outcome = Reconciliation(identity=survivor, created=True)
    survivor = outcome.identity

    # Rule 6: the latest login's attributes, nothing else.
    survivor.given_name = profile.given_name
    survivor.family_name = profile.family_name
    survivor.school_code = school_code
    survivor.school_name = school_name
    survivor.last_login_at = now
    await session.flush()

    if outcome.created:
        await events.emit(session, events.CREATED, survivor.sub, {"temporary": survivor.temporary})
    if outcome.identified:
        await events.emit(session, events.IDENTIFIED, survivor.sub)

    merge_away = [i for i in temporaries if i.id != survivor.id]
    for victim in merge_away:
        await _merge(session, victim, survivor)
        outcome.merged_subs.append(victim.sub)
    merged_ids = {v.id for v in merge_away}
    foreign_ids = {f.id for f in foreign}

    # Rule 2: claim every account of this login unless another identified pupil owns it (rule 5).
    for account in profile.all_account_uuids:
        owner = alias_owner.get(account)
        if owner is None:
            session.add(AccountAlias(account_uuid=account, identity_id=survivor.id, created_at=now))
        elif owner in foreign_ids:
            outcome.conflicts += 1
            other = next(f for f in foreign if f.id == owner)
            session.add(
                DataQualityReport(
                    kind="account_in_two_pupils",
                    subs=[str(survivor.sub), str(other.sub)],
                    account_uuid=account,
                    detail="An account_uuid is listed for two pupils with different leer_id_uuid; "
                    "the identities were kept apart.",
                    created_at=now,
                )
            )
        elif owner in merged_ids:
            pass  # moved by _merge
    if foreign and not outcome.conflicts:
        # The leer_id_uuid matched one pupil and an alias another (without a shared account).
        outcome.conflicts += 1
        session.add(
            DataQualityReport(
                kind="pupil_matches_two_identities",
                subs=[str(survivor.sub), *(str(f.sub) for f in foreign)],
                detail="One login points at several identified pupils; they were kept apart.",
                created_at=now,
            )
        )
    await session.flush()
    return outcome


async def _alias_owners(session: AsyncSession, accounts: Sequence[str]) -> dict[str, int]:
    rows = await session.execute(
        select(AccountAlias.account_uuid, AccountAlias.identity_id).where(
            AccountAlias.account_uuid.in_(accounts)
        )
    )
    return {account: identity_id for account, identity_id in rows}


async def _merge(session: AsyncSession, victim: Identity, survivor: Identity) -> None:
    """Rule 4: move the victim's aliases to the survivor and retire the victim's sub.

    Deleting the victim cascades to its sessions, so its tokens introspect ``active: false``.
    """
    await session.execute(
        update(AccountAlias).where(AccountAlias.identity_id == victim.id).values(identity_id=survivor.id)
    )
    await session.execute(delete(Identity).where(Identity.id == victim.id))
    await events.emit(
        session, events.MERGED, survivor.sub, {"from": str(victim.sub), "into": str(survivor.sub)}
    )


async def find_existing(session: AsyncSession, profile: LeerIdProfile) -> list[Identity]:
    """Read-only lookup (no locks), e.g. to end the sessions of a pupil who is refused access."""
    return await find_identities(session, profile)
