"""Random sequences of logins against PostgreSQL, checked after every step against a small
in-memory model of the rules (docs/identity.md) and against invariants that hold whatever the model says.

A small pool of accounts and leer_ids makes hypothesis produce every situation the rules name:
temporary logins, identification, new accounts with histories, merges, and histories that wrongly
list another pupil's account (rule 5). Hypothesis drives synchronous steps, so each step runs its
coroutine on a private event loop in a thread with its own engine.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import create_engine, create_session_factory, unit_of_work
from leerid_gateway.identity import events
from leerid_gateway.leerid.profile import LeerIdProfile
from leerid_gateway.privacy import service as privacy
from leerid_gateway.privacy.models import PrivacyLogEntry
from leerid_gateway.sessions.models import BrowserSession
from tests.identity import State, login, login_with_writes, profile, read_state
from tests.support import database

T = TypeVar("T")

ACCOUNTS = tuple(f"acc-{n}" for n in range(7))
LEER_IDS = ("leer-a", "leer-b", "leer-c")


class _LoopThread:
    """An event loop of our own, so hypothesis's synchronous steps can await the database."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@dataclass
class _Identity:
    order: int  # creation order: "oldest" in rule 4
    leer_id: str | None
    given: str
    sub: uuid.UUID | None = None  # learnt from the database when created


@dataclass
class Model:
    """The rules, stated as plainly as possible; identities are named by creation order."""

    identities: dict[int, _Identity] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    reports: set[tuple[str, frozenset[int]]] = field(default_factory=set)
    created: int = 0

    def login(self, p: LeerIdProfile) -> tuple[int, list[tuple[str, int, uuid.UUID | None]], bool]:
        """Apply one login; return the identity it maps to, the events expected (type, into, from) and
        whether it changed nothing but the attributes (rule 6 alone: a returning pupil)."""
        found = {self.aliases[a] for a in p.all_account_uuids if a in self.aliases}
        found |= {o for o, i in self.identities.items() if p.leer_id_uuid and i.leer_id == p.leer_id_uuid}
        identified = sorted(o for o in found if self.identities[o].leer_id is not None)
        temporaries = sorted(o for o in found if self.identities[o].leer_id is None)
        emitted: list[tuple[str, int, uuid.UUID | None]] = []
        if p.leer_id_uuid is not None:
            own = next((o for o in identified if self.identities[o].leer_id == p.leer_id_uuid), None)
        else:
            current = self.aliases.get(p.account_uuid)
            own = current if current in identified else (identified[0] if identified else None)
        if own is not None:
            survivor = own
        elif temporaries:
            survivor = temporaries[0]
            if p.leer_id_uuid is not None:
                self.identities[survivor].leer_id = p.leer_id_uuid
                emitted.append((events.IDENTIFIED, survivor, None))
        else:
            self.created += 1
            survivor = self.created
            self.identities[survivor] = _Identity(survivor, p.leer_id_uuid, p.given_name)
            emitted.append((events.CREATED, survivor, None))
        attributes_only = not emitted and all(self.aliases.get(a) == survivor for a in p.all_account_uuids)
        self.identities[survivor].given = p.given_name
        for victim in (o for o in temporaries if o != survivor):
            emitted.append((events.MERGED, survivor, self.sub(victim)))
            del self.identities[victim]
            self.aliases = {a: survivor if o == victim else o for a, o in self.aliases.items()}
        for account in p.all_account_uuids:
            owner = self.aliases.setdefault(account, survivor)
            if owner != survivor:  # another identified pupil's account: theirs, reported once
                self.reports.add((account, frozenset((survivor, owner))))
        return survivor, emitted, attributes_only

    def sub(self, order: int) -> uuid.UUID:
        found = self.identities[order].sub
        assert found is not None
        return found


class ReconcileMachine(RuleBasedStateMachine):
    loop: ClassVar[_LoopThread]
    engine: ClassVar[AsyncEngine]

    def __init__(self) -> None:
        super().__init__()
        self.loop.run(database.clear(self.engine))
        self.model = Model()
        self.state = State({}, {}, [], [])
        self.seen_accounts: set[str] = set()
        self.written = 0  # entries and sessions written by the reconciliation's own call

    @rule(
        account=st.sampled_from(ACCOUNTS),
        leer_id=st.none() | st.sampled_from(LEER_IDS),
        history=st.lists(st.sampled_from(ACCOUNTS), max_size=3, unique=True),
        given=st.sampled_from(("Ann", "Bo", "Cas")),
        with_writes=st.booleans(),
    )
    def log_in(
        self, account: str, leer_id: str | None, history: list[str], given: str, with_writes: bool
    ) -> None:
        p = profile(account, leer_id, tuple(history), given=given)
        expected, expected_events, attributes_only = self.model.login(p)
        if with_writes:
            # The login's own writes go with it: a returning pupil is then admitted by the call that
            # reads the identity (migration 0009), every other login is left to the rules in Python.
            result, sid = self.loop.run(login_with_writes(self.engine, p))
            assert (result.appended is not None) == attributes_only
            self.written += 1 if attributes_only else 0
            # Entries are never removed; a session goes with its identity when that is merged away.
            owner = result.identity.id if attributes_only else None
            assert self.loop.run(_written(self.engine, sid)) == (self.written, owner, True)
        else:
            result = self.loop.run(login(self.engine, p))
        if self.model.identities[expected].sub is None:
            self.model.identities[expected].sub = result.identity.sub
        assert result.identity.sub == self.model.sub(expected)

        before, after = self.state, self.loop.run(read_state(self.engine))
        self.state = after
        self.seen_accounts.update(p.all_account_uuids)
        self._check_events(before, after, expected_events)
        self._check_rules_hold(before, after, p, result.identity.sub)

    def _check_events(
        self, before: State, after: State, expected: list[tuple[str, int, uuid.UUID | None]]
    ) -> None:
        rows = [(e.id, e.type, e.sub, e.data) for e in after.events]
        assert rows[: len(before.events)] == [(e.id, e.type, e.sub, e.data) for e in before.events]
        assert [e.id for e in after.events] == sorted({e.id for e in after.events})  # monotonic cursor
        got = [(e.type, e.sub, e.data.get("from")) for e in after.events[len(before.events) :]]
        want = [
            (kind, self.model.sub(into), None if old is None else str(old)) for kind, into, old in expected
        ]
        assert got == want

    def _check_rules_hold(self, before: State, after: State, p: LeerIdProfile, sub: uuid.UUID) -> None:
        # The model's picture, exactly.
        assert set(after.identities) == {self.model.sub(o) for o in self.model.identities}
        assert after.aliases == {a: self.model.sub(o) for a, o in self.model.aliases.items()}
        for order, known in self.model.identities.items():
            row = after.identities[self.model.sub(order)]
            assert (row.leer_id_uuid, row.given_name) == (known.leer_id, known.given)
        reports = [(r.account_uuid or "", frozenset(r.subs)) for r in after.reports]
        assert len(reports) == len(set(reports))  # one report per conflict, however many logins
        assert set(reports) == {
            (a, frozenset(str(self.model.sub(o)) for o in pair)) for a, pair in self.model.reports
        }
        # Rules that hold whatever the model says.
        assert self.seen_accounts <= set(after.aliases)  # rule 2
        if p.leer_id_uuid is not None:
            assert after.identities[sub].leer_id_uuid == p.leer_id_uuid  # the pupil at hand
        retired = {
            uuid.UUID(e.data["from"]): uuid.UUID(e.data["into"])
            for e in after.events[len(before.events) :]
            if e.type == events.MERGED
        }
        for old_sub, identity in before.identities.items():
            if identity.leer_id_uuid is not None:  # rule 5: identified pupils are never merged
                assert after.identities[old_sub].leer_id_uuid == identity.leer_id_uuid
            else:  # a sub disappears only by a merge into a survivor that holds
                assert old_sub in after.identities or retired[old_sub] in after.identities
        for account, owner in before.aliases.items():
            if owner != after.aliases[account]:  # aliases move only out of a merged identity
                assert retired.get(owner) == after.aliases[account]


async def _written(engine: AsyncEngine, sid: str) -> tuple[int, int | None, bool]:
    """Privacy-log entries, the owner of session ``sid``, and whether the chain holds."""
    async with unit_of_work(create_session_factory(engine)) as db:
        entries = await db.scalar(select(func.count()).select_from(PrivacyLogEntry))
        session = await db.get(BrowserSession, sid)
        chain = await privacy.verify(db)
    return int(entries or 0), session.identity_id if session else None, chain.ok


def test_random_logins_follow_the_rules(pg_url: str) -> None:
    ReconcileMachine.loop = loop = _LoopThread()
    ReconcileMachine.engine = engine = loop.run(_make_engine(pg_url))
    try:
        run_state_machine_as_test(
            ReconcileMachine,
            settings=settings(
                max_examples=40,
                stateful_step_count=15,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        loop.run(engine.dispose())
        loop.close()


async def _make_engine(url: str) -> AsyncEngine:
    return create_engine(url, pool_size=2)
