"""A class logging in at the same second through several replicas (PostgreSQL only).

Every login runs in its own transaction on its own connection, as on separate replicas; the only
coordination is the database's. The final state must be what the rules demand, with no error
reaching any pupil and no deadlock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import create_engine, create_session_factory, unit_of_work
from leerid_gateway.identity import events
from leerid_gateway.identity.models import AccountAlias, Identity
from leerid_gateway.identity.service import Reconciliation
from leerid_gateway.leerid.profile import LeerIdProfile
from leerid_gateway.privacy import service as privacy
from leerid_gateway.privacy.models import PrivacyLogEntry
from tests.identity import State, login, login_with_writes, profile, read_state

PUPILS = 30
TIMEOUT = 60.0
REPLICA_CONNECTIONS = 24


@pytest.fixture
async def replicas(pg: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """Up to REPLICA_CONNECTIONS connections at once (the server is shared: stay well below
    max_connections); logins beyond that wait for a connection as they would on a replica."""
    engine = create_engine(pg.url.render_as_string(hide_password=False), pool_size=REPLICA_CONNECTIONS)
    yield engine
    await engine.dispose()


async def _all_at_once(
    engine: AsyncEngine, logins: list[LeerIdProfile], *, writes: bool = False
) -> list[Reconciliation]:
    """``writes``: each login with its privacy-log entry and session (a returning pupil is then
    written by the reconciliation's own call, migration 0009)."""
    random.Random(len(logins)).shuffle(logins)

    async def one(p: LeerIdProfile) -> Reconciliation:
        return (await login_with_writes(engine, p))[0] if writes else await login(engine, p)

    # return_exceptions: every login finishes before the test does, whatever happens to the others.
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(one(p) for p in logins), return_exceptions=True), TIMEOUT
    )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, f"{len(errors)} logins failed, e.g. {errors[0]!r}"
    return [o for o in outcomes if not isinstance(o, BaseException)]


def _assert_one_identity_per_pupil(state: State, pupil: int, accounts: set[str]) -> None:
    identity = state.by_leer_id(f"leer-{pupil}")
    assert state.aliases_of(identity.sub) == accounts


async def test_brand_new_pupils_logging_in_twice_at_once(replicas: AsyncEngine) -> None:
    """Two callbacks per new pupil, one identified and one not (or both identified)."""
    logins = []
    for n in range(PUPILS):
        logins.append(profile(f"acc-{n}", f"leer-{n}"))
        logins.append(profile(f"acc-{n}") if n % 2 else profile(f"acc-{n}", f"leer-{n}"))
        logins.append(profile(f"acc-{n}", f"leer-{n}"))

    results = await _all_at_once(replicas, logins)

    state = await read_state(replicas)
    assert len(state.identities) == PUPILS
    for n in range(PUPILS):
        _assert_one_identity_per_pupil(state, n, {f"acc-{n}"})
    assert {r.identity.sub for r in results} == set(state.identities)
    # Whichever login came first created the pupil; an identified event only if the unidentified
    # one won the race.
    assert sum(e.type == events.CREATED for e in state.events) == PUPILS
    assert not any(e.type == events.MERGED for e in state.events)


async def test_temporary_accounts_identified_and_merged_concurrently(replicas: AsyncEngine) -> None:
    """Each pupil has one or two temporary identities already; now their temporary logins race
    the identified login that lists them in its history (rules 3 and 4)."""
    for n in range(PUPILS):
        await login(replicas, profile(f"tmp-{n}"))
        if n % 3:
            await login(replicas, profile(f"old-{n}"))
    before = await read_state(replicas)

    logins = []
    for n in range(PUPILS):
        history = (f"tmp-{n}", f"old-{n}") if n % 3 else (f"tmp-{n}",)
        logins.append(profile(f"acc-{n}", f"leer-{n}", history))
        logins.append(profile(f"tmp-{n}"))
        logins.append(profile(f"acc-{n}", f"leer-{n}", history[::-1]))
        if n % 3:
            logins.append(profile(f"old-{n}"))

    await _all_at_once(replicas, logins)

    state = await read_state(replicas)
    assert len(state.identities) == PUPILS
    for n in range(PUPILS):
        identity = state.by_leer_id(f"leer-{n}")
        # The oldest temporary identity survives with its sub (rules 3 and 4).
        assert identity.sub == before.aliases[f"tmp-{n}"]
        expected = {f"acc-{n}", f"tmp-{n}"} | ({f"old-{n}"} if n % 3 else set())
        assert state.aliases_of(identity.sub) == expected
    merged = [e for e in state.events if e.type == events.MERGED]
    assert {e.data["from"] for e in merged} == {
        str(before.aliases[f"old-{n}"]) for n in range(PUPILS) if n % 3
    }


@pytest.mark.parametrize("writes", [False, True], ids=["reconcile", "with-the-login-s-writes"])
async def test_logins_with_disjoint_keys_on_one_identity(replicas: AsyncEngine, writes: bool) -> None:
    """A temporary identity with two accounts: one login uses the first account while another
    merges the identity away through the second. The two logins share no key, so locking only a
    login's own keys does not serialise them; reconcile must lock every key of the identities it
    finds. With the login's writes, the returning logins are written by the reconciliation's own
    call, racing the merges: the privacy log still chains, one entry per login so written."""
    for n in range(PUPILS):
        await login(replicas, profile(f"first-{n}"))  # older temporary identity
        await login(replicas, profile(f"tmp-{n}", history=(f"alt-{n}",)))  # the one merged away
    before = await read_state(replicas)

    logins = []
    for n in range(PUPILS):
        logins.append(profile(f"tmp-{n}"))
        logins.append(profile(f"acc-{n}", f"leer-{n}", (f"alt-{n}", f"first-{n}")))
        logins.append(profile(f"tmp-{n}", given="Other"))

    outcomes = await _all_at_once(replicas, logins, writes=writes)

    state = await read_state(replicas)
    assert len(state.identities) == PUPILS
    for n in range(PUPILS):
        identity = state.by_leer_id(f"leer-{n}")
        assert identity.sub == before.aliases[f"first-{n}"]
        assert state.aliases_of(identity.sub) == {f"first-{n}", f"tmp-{n}", f"alt-{n}", f"acc-{n}"}
    if writes:
        admitted = [o for o in outcomes if o.appended is not None]
        assert admitted  # the returning logins that ran before or after the merge
        async with unit_of_work(create_session_factory(replicas)) as db:
            entries = list(await db.scalars(select(PrivacyLogEntry).order_by(PrivacyLogEntry.id)))
            assert (await privacy.verify(db)).ok
        assert sorted(e.id for e in entries) == sorted(o.appended.id for o in admitted if o.appended)


async def test_overlapping_histories_and_data_errors_under_load(replicas: AsyncEngine) -> None:
    """Identified pupils whose histories wrongly list a neighbour's account (rule 5), racing the
    neighbour's own logins: nobody is merged, nothing is stolen, every conflict is reported once."""
    for n in range(PUPILS):
        await login(replicas, profile(f"acc-{n}", f"leer-{n}"))
    before = await read_state(replicas)

    logins = []
    for n in range(PUPILS):
        neighbour = (n + 1) % PUPILS
        logins.append(profile(f"new-{n}", f"leer-{n}", (f"acc-{n}", f"acc-{neighbour}")))
        logins.append(profile(f"new-{n}", f"leer-{n}", (f"acc-{n}", f"acc-{neighbour}")))
        logins.append(profile(f"acc-{n}"))

    await _all_at_once(replicas, logins)

    state = await read_state(replicas)
    assert set(state.identities) == set(before.identities)
    for n in range(PUPILS):
        _assert_one_identity_per_pupil(state, n, {f"acc-{n}", f"new-{n}"})
    assert sorted(r.account_uuid or "" for r in state.reports) == sorted(f"acc-{n}" for n in range(PUPILS))
    assert not any(e.type == events.MERGED for e in state.events)


async def test_a_unique_violation_is_retried_not_shown_to_the_pupil(replicas: AsyncEngine) -> None:
    """The last line of defence: a writer that bypasses the locks (a hole in them, simulated here
    by a raw insert) makes the alias insert fail; the transaction is run again from a fresh read
    and finds the committed row instead of showing the pupil an error."""
    now = dt.datetime.now(dt.UTC)
    async with replicas.connect() as intruder:
        await intruder.begin()
        identity_id = await intruder.scalar(
            insert(Identity)
            .values(
                sub=uuid.uuid4(), given_name="Ann", family_name="Peeters", created_at=now, last_login_at=now
            )
            .returning(Identity.id)
        )
        await intruder.execute(
            insert(AccountAlias).values(account_uuid="acc-x", identity_id=identity_id, created_at=now)
        )
        racing = asyncio.create_task(login(replicas, profile("acc-x")))
        await asyncio.sleep(0.5)  # the login is now blocked on the uncommitted alias
        assert not racing.done()
        await intruder.commit()
    result = await asyncio.wait_for(racing, TIMEOUT)

    state = await read_state(replicas)
    assert result.identity.id == identity_id and not result.created
    assert list(state.identities) == [result.identity.sub]
    assert state.events == []  # the first attempt's creation was rolled back with its transaction
