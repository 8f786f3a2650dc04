"""Helpers for the identity tests: build a profile, log in through reconcile, read back the state."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import create_session_factory, unit_of_work
from leerid_gateway.identity.models import AccountAlias, DataQualityReport, Identity, IdentityEvent
from leerid_gateway.identity.service import LoginWrites, Reconciliation, in_retried_transaction, reconcile
from leerid_gateway.kit.crypto import Hasher
from leerid_gateway.leerid.profile import LeerIdProfile
from leerid_gateway.privacy import service as privacy
from leerid_gateway.sessions import service as sessions


def profile(
    account: str,
    leer_id: str | None = None,
    history: tuple[str, ...] = (),
    *,
    given: str = "Ann",
    family: str = "Peeters",
) -> LeerIdProfile:
    return LeerIdProfile(
        account_uuid=account,
        leer_id_uuid=leer_id,
        history_account_uuids=tuple(h for h in dict.fromkeys(history) if h != account),
        given_name=given,
        family_name=family,
        school_codes=("123456",),
        school_names=("Sint-Jozefscollege",),
    )


async def login(engine: AsyncEngine, p: LeerIdProfile, **kwargs: Any) -> Reconciliation:
    """One login's reconciliation in its own transaction, retried as the gateway's admission is (on
    the driver first where the engine allows it, else in a Session)."""
    factory = create_session_factory(engine)
    return await in_retried_transaction(factory, lambda db: reconcile(db, p, **kwargs), on_driver=True)


_POLICY = sessions.SessionPolicy(idle=dt.timedelta(hours=1), absolute=dt.timedelta(hours=8))
_HASHER = Hasher("a test secret that is long enough to be one", "session")


def login_writes() -> tuple[sessions.NewSession, LoginWrites]:
    """A login's session and its writes (privacy-log entry and session), as the admission makes them
    on PostgreSQL (oidc/service.py)."""
    entry = privacy.pending(
        actor="system", action=privacy.LOGIN_RECEIVED, purpose="authenticatie", fields=["given_name"]
    )
    new = sessions.new(_HASHER, _POLICY)
    then = LoginWrites(entry=entry, session=new)
    return new, then


async def login_with_writes(
    engine: AsyncEngine, p: LeerIdProfile, **kwargs: Any
) -> tuple[Reconciliation, str]:
    """``login`` with the login's writes (``LoginWrites``); and the session's id. A returning pupil's
    entry and session are written by the reconciliation's own call (``appended``); for any other
    login, nobody writes them here."""
    new, then = login_writes()
    return await login(engine, p, then=then, **kwargs), new.sid


@dataclass
class State:
    identities: dict[uuid.UUID, Identity]  # by sub
    aliases: dict[str, uuid.UUID]  # account → sub
    events: list[IdentityEvent]
    reports: list[DataQualityReport]

    def by_leer_id(self, leer_id: str) -> Identity:
        return next(i for i in self.identities.values() if i.leer_id_uuid == leer_id)

    def aliases_of(self, sub: uuid.UUID) -> set[str]:
        return {a for a, s in self.aliases.items() if s == sub}


async def read_state(engine: AsyncEngine) -> State:
    async with unit_of_work(create_session_factory(engine)) as db:
        identities = list(await db.scalars(select(Identity)))
        subs = {i.id: i.sub for i in identities}
        aliases = {a.account_uuid: subs[a.identity_id] for a in await db.scalars(select(AccountAlias))}
        events = list(await db.scalars(select(IdentityEvent).order_by(IdentityEvent.id)))
        reports = list(await db.scalars(select(DataQualityReport).order_by(DataQualityReport.id)))
    return State({i.sub: i for i in identities}, aliases, events, reports)
