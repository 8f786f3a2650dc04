"""A returning pupil's login in one call (migration 0009): the call that locks and reads the identity
also writes the attributes, the session and the privacy-log entry, but only when the rules would do
nothing else; every other login is left, unwritten, to the rules in Python."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import create_session_factory, unit_of_work
from leerid_gateway.identity.service import (
    Contended,
    lock_keys,
    reconcile,
)
from leerid_gateway.leerid.profile import LeerIdProfile
from leerid_gateway.privacy import service as privacy
from leerid_gateway.privacy.models import PrivacyLogEntry
from leerid_gateway.sessions.models import BrowserSession
from tests.identity import login, login_with_writes, login_writes, profile, read_state


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with unit_of_work(create_session_factory(engine)) as db:
        entries = await db.scalar(select(func.count()).select_from(PrivacyLogEntry))
        opened = await db.scalar(select(func.count()).select_from(BrowserSession))
    return int(entries or 0), int(opened or 0)


async def test_a_returning_pupil_is_written_by_the_call_that_reads_the_identity(pg: AsyncEngine) -> None:
    first = await login(pg, profile("acc-1", "leer-1", ("tmp-1",), given="Ann"))
    outcome, sid = await login_with_writes(
        pg, profile("acc-1", "leer-1", ("tmp-1",), given="Anna"), school_code="123456"
    )

    assert outcome.appended is not None and not outcome.created
    assert outcome.identity.sub == first.identity.sub and outcome.identity.given_name == "Anna"
    state = await read_state(pg)
    assert state.identities[first.identity.sub].given_name == "Anna"  # rule 6
    assert state.identities[first.identity.sub].school_code == "123456"
    async with unit_of_work(create_session_factory(pg)) as db:
        opened = await db.get(BrowserSession, sid)
        assert opened is not None and opened.identity_id == first.identity.id
        (entry,) = list(await db.scalars(select(PrivacyLogEntry)))
        assert (entry.id, entry.hash) == (outcome.appended.id, outcome.appended.hash)
        assert (entry.sub, entry.action, entry.fields) == (
            first.identity.sub,
            privacy.LOGIN_RECEIVED,
            ["given_name"],
        )
        # verify() recomputes the entry's hash from what was stored, with the chain's entry_hash.
        assert (await privacy.verify(db)).ok


@pytest.mark.parametrize(
    ("before", "now"),
    [
        ([], profile("acc-1", "leer-1")),  # a new pupil (rule 1)
        ([profile("tmp-1")], profile("acc-1", "leer-1", ("tmp-1",))),  # identification (rule 3)
        ([profile("tmp-1"), profile("tmp-2")], profile("tmp-2", None, ("tmp-1",))),  # a merge (rule 4)
        ([profile("acc-1", "leer-1")], profile("acc-2", "leer-1", ("acc-1",))),  # a new alias (rule 2)
        ([profile("acc-1", "leer-1"), profile("acc-2", "leer-2")], profile("acc-2", "leer-2", ("acc-1",))),
        ([profile("acc-1", "leer-1")], profile("acc-1", "leer-2")),  # another pupil's account (rule 5)
    ],
    ids=["new", "identification", "merge", "new-alias", "foreign-alias", "foreign-account"],
)
async def test_any_other_login_is_left_to_the_rules_and_written_by_the_caller(
    pg: AsyncEngine, before: list[LeerIdProfile], now: LeerIdProfile
) -> None:
    for earlier in before:
        await login(pg, earlier)
    outcome, _ = await login_with_writes(pg, now)
    assert outcome.appended is None
    # Nothing of the login's own writes: no entry, no session (the admission writes them after).
    assert await _counts(pg) == (0, 0)


async def test_a_pupil_with_more_keys_than_the_login_is_admitted_once_the_closure_is_locked(
    pg: AsyncEngine,
) -> None:
    """The identity holds a leer_id and another account that this (unidentified) login does not name:
    the first call locks the login's keys and declines; the second takes the rest without waiting
    and admits."""
    identified = await login(pg, profile("acc-2", "leer-1", ("tmp-1",)))
    outcome, _ = await login_with_writes(pg, profile("tmp-1"))
    assert outcome.appended is not None
    assert outcome.identity.sub == identified.identity.sub
    assert await _counts(pg) == (1, 1)


@pytest.mark.parametrize(
    ("login_now", "held_key"),
    [(profile("tmp-1"), "leer_id:leer-1"), (profile("acc-2", "leer-1"), "account:acc-3")],
    ids=["its-leer-id", "another-account"],
)
async def test_a_closure_key_held_elsewhere_is_contended_and_writes_nothing(
    pg: AsyncEngine, login_now: LeerIdProfile, held_key: str
) -> None:
    """A key of the identity that the login does not name is taken without waiting: while another
    transaction holds it, the login is Contended (and runs again, waiting in order), never admitted."""
    await login(pg, profile("acc-2", "leer-1", ("tmp-1", "acc-3")))
    factory = create_session_factory(pg)
    _, then = login_writes()
    async with factory() as holder, holder.begin():
        await lock_keys(holder, [held_key])
        with pytest.raises(Contended):
            async with unit_of_work(factory) as db:
                await reconcile(db, login_now, then=then)


async def test_a_hash_the_database_got_wrong_stops_the_login(pg: AsyncEngine) -> None:
    """As if the function had been changed to hash other bytes than the chain's: it is replaced by
    one that does, inside the test's transaction (PostgreSQL's DDL is transactional)."""
    await login(pg, profile("acc-1", "leer-1"))
    _, then = login_writes()
    with pytest.raises(RuntimeError, match="not the chain's"):
        async with unit_of_work(create_session_factory(pg)) as db:
            source = (
                await db.execute(text("SELECT pg_get_functiondef('leerid_login_admission'::regproc)"))
            ).scalar_one()
            wrong = source.replace("sha256(hashed_before ||", "sha256('\\x21'::bytea || hashed_before ||")
            assert wrong != source
            await db.execute(text(wrong))
            await reconcile(db, profile("acc-1", "leer-1", given="Anna"), then=then)
    assert await _counts(pg) == (0, 0)
    assert next(iter((await read_state(pg)).identities.values())).given_name == "Ann"


async def test_concurrent_returning_logins_chain_their_entries(pg: AsyncEngine) -> None:
    """Returning pupils admitted at once, each in one call: every entry follows the one before."""
    pupils = [profile(f"acc-{n}", f"leer-{n}") for n in range(6)]
    for p in pupils:
        await login(pg, p)
    outcomes = await asyncio.gather(*(login_with_writes(pg, p) for p in pupils * 3))
    assert all(o.appended is not None for o, _ in outcomes)
    assert await _counts(pg) == (18, 18)
    async with unit_of_work(create_session_factory(pg)) as db:
        assert (await privacy.verify(db)).ok
    assert len({uuid.UUID(str(o.identity.sub)) for o, _ in outcomes}) == 6
