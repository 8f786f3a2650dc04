"""One story per reconciliation rule (docs/identity.md), on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import create_session_factory, unit_of_work
from leerid_gateway.identity import events
from leerid_gateway.identity.service import reconcile
from leerid_gateway.sessions.models import BrowserSession
from tests.identity import login, profile, read_state


async def _open_session(engine: AsyncEngine, identity_id: int) -> str:
    now = dt.datetime.now(dt.UTC)
    sid = secrets.token_hex(16)
    async with unit_of_work(create_session_factory(engine)) as db:
        db.add(
            BrowserSession(
                id=sid,
                secret_hash=secrets.token_bytes(32),
                identity_id=identity_id,
                created_at=now,
                last_seen_at=now,
                absolute_expires_at=now + dt.timedelta(hours=8),
            )
        )
    return sid


async def _session_exists(engine: AsyncEngine, sid: str) -> bool:
    async with unit_of_work(create_session_factory(engine)) as db:
        return (await db.get(BrowserSession, sid)) is not None


async def test_rule1_identified_by_leer_id_unidentified_by_temporary_account(db: AsyncEngine) -> None:
    identified = await login(db, profile("acc-1", "leer-1"))
    temporary = await login(db, profile("tmp-1"))

    state = await read_state(db)
    assert identified.created and temporary.created
    assert state.by_leer_id("leer-1").sub == identified.identity.sub
    assert not state.identities[identified.identity.sub].temporary
    assert state.identities[temporary.identity.sub].temporary
    assert state.aliases == {"acc-1": identified.identity.sub, "tmp-1": temporary.identity.sub}
    assert [(e.type, e.sub, e.data) for e in state.events] == [
        (events.CREATED, identified.identity.sub, {"temporary": False}),
        (events.CREATED, temporary.identity.sub, {"temporary": True}),
    ]
    # A second login of either pupil finds the same identity and writes no event.
    assert (await login(db, profile("acc-1", "leer-1"))).identity.sub == identified.identity.sub
    assert (await login(db, profile("tmp-1"))).identity.sub == temporary.identity.sub
    assert len((await read_state(db)).events) == 2


async def test_rule2_every_account_ever_seen_is_an_alias_of_one_identity(db: AsyncEngine) -> None:
    first = await login(db, profile("acc-2", "leer-1", ("acc-1", "tmp-1")))
    # A login with only an old account (no leer_id) finds the pupil through the alias.
    again = await login(db, profile("tmp-1"))
    later = await login(db, profile("acc-3", "leer-1", ("acc-2",)))

    state = await read_state(db)
    sub = first.identity.sub
    assert again.identity.sub == later.identity.sub == sub
    assert state.aliases == dict.fromkeys(("acc-1", "acc-2", "acc-3", "tmp-1"), sub)
    assert len(state.identities) == 1


async def test_rule3_identification_upgrades_in_place_and_keeps_the_sub(db: AsyncEngine) -> None:
    temporary = await login(db, profile("tmp-1"))
    upgraded = await login(db, profile("acc-1", "leer-1", ("tmp-1",)))

    state = await read_state(db)
    sub = temporary.identity.sub
    assert upgraded.identity.sub == sub and upgraded.identified and not upgraded.created
    assert state.identities[sub].leer_id_uuid == "leer-1"
    assert state.aliases == {"tmp-1": sub, "acc-1": sub}
    assert [(e.type, e.sub) for e in state.events] == [(events.CREATED, sub), (events.IDENTIFIED, sub)]


async def test_rule4_two_temporaries_merge_into_the_oldest(db: AsyncEngine) -> None:
    oldest = await login(db, profile("tmp-1"))
    younger = await login(db, profile("tmp-2"))
    sid = await _open_session(db, younger.identity.id)

    result = await login(db, profile("acc-1", "leer-1", ("tmp-2", "tmp-1")))

    state = await read_state(db)
    survivor, victim = oldest.identity.sub, younger.identity.sub
    assert result.identity.sub == survivor and result.identified
    assert result.merged_subs == [victim]
    assert set(state.identities) == {survivor}
    assert state.aliases == dict.fromkeys(("tmp-1", "tmp-2", "acc-1"), survivor)
    assert not await _session_exists(db, sid)  # the retired sub's sessions (and so tokens) end
    assert [(e.type, e.sub, e.data) for e in state.events[2:]] == [
        (events.IDENTIFIED, survivor, {}),
        (events.MERGED, survivor, {"from": str(victim), "into": str(survivor)}),
    ]


async def test_rule4_identified_identity_absorbs_a_temporary_one(db: AsyncEngine) -> None:
    # The temporary identity is older, yet the identified one survives.
    temporary = await login(db, profile("tmp-1"))
    identified = await login(db, profile("acc-1", "leer-1"))
    victim_sid = await _open_session(db, temporary.identity.id)
    survivor_sid = await _open_session(db, identified.identity.id)

    result = await login(db, profile("acc-2", "leer-1", ("acc-1", "tmp-1")))

    state = await read_state(db)
    survivor, victim = identified.identity.sub, temporary.identity.sub
    assert result.identity.sub == survivor and result.merged_subs == [victim]
    assert set(state.identities) == {survivor}
    assert state.aliases == dict.fromkeys(("tmp-1", "acc-1", "acc-2"), survivor)
    assert not await _session_exists(db, victim_sid)
    assert await _session_exists(db, survivor_sid)
    assert (state.events[-1].type, state.events[-1].data) == (
        events.MERGED,
        {"from": str(victim), "into": str(survivor)},
    )


async def test_rule5_two_identified_pupils_never_merge(db: AsyncEngine) -> None:
    anna = await login(db, profile("acc-a", "leer-a", given="Anna"))
    # DOV's data lists Anna's account in Bert's history.
    bert = await login(db, profile("acc-b", "leer-b", ("acc-a",), given="Bert"))
    await login(db, profile("acc-b", "leer-b", ("acc-a",), given="Bert"))  # no second report

    state = await read_state(db)
    assert bert.identity.sub != anna.identity.sub and bert.created and not bert.merged_subs
    assert bert.conflicts == 1
    assert state.aliases == {"acc-a": anna.identity.sub, "acc-b": bert.identity.sub}
    assert state.identities[anna.identity.sub].given_name == "Anna"  # nothing of Anna's touched
    assert [(r.kind, r.account_uuid, sorted(r.subs)) for r in state.reports] == [
        ("account_in_two_pupils", "acc-a", sorted([str(anna.identity.sub), str(bert.identity.sub)]))
    ]
    assert not any(e.type == events.MERGED for e in state.events)
    # Anna still logs in as herself, and her account still leads to her.
    assert (await login(db, profile("acc-a", "leer-a"))).identity.sub == anna.identity.sub
    assert (await login(db, profile("acc-a"))).identity.sub == anna.identity.sub


async def test_rule5_temporary_of_the_pupil_at_hand_still_merges_despite_a_conflict(db: AsyncEngine) -> None:
    anna = await login(db, profile("acc-a", "leer-a"))
    temporary = await login(db, profile("tmp-b"))

    bert = await login(db, profile("acc-b", "leer-b", ("acc-a", "tmp-b")))

    state = await read_state(db)
    assert bert.identity.sub == temporary.identity.sub and bert.identified and bert.conflicts == 1
    assert set(state.identities) == {anna.identity.sub, temporary.identity.sub}
    assert state.aliases["acc-a"] == anna.identity.sub
    assert state.aliases["tmp-b"] == state.aliases["acc-b"] == temporary.identity.sub


async def test_rule6_each_login_overwrites_the_attributes(db: AsyncEngine) -> None:
    await login(db, profile("acc-1", "leer-1", given="Ann", family="Peeters"), school_code="111111")
    result = await login(db, profile("acc-1", "leer-1", given="Anna", family="Janssens"))

    identity = (await read_state(db)).by_leer_id("leer-1")
    assert (identity.given_name, identity.family_name) == ("Anna", "Janssens")
    assert (identity.school_code, identity.school_name) == (None, None)
    assert identity.last_login_at >= identity.created_at
    assert result.identity.given_name == "Anna"


async def test_events_have_a_monotonic_cursor_and_come_from_the_same_transaction(db: AsyncEngine) -> None:
    await login(db, profile("tmp-1"))
    await login(db, profile("tmp-2"))
    await login(db, profile("acc-1", "leer-1", ("tmp-1", "tmp-2")))

    ids = [e.id for e in (await read_state(db)).events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 4

    # A reconciliation rolled back with its transaction leaves no event behind.
    with pytest.raises(_Abort):
        async with unit_of_work(create_session_factory(db)) as session:
            await reconcile(session, profile("tmp-9"))
            raise _Abort
    assert len((await read_state(db)).events) == 4


class _Abort(Exception):
    pass
