"""On PostgreSQL an entry is appended in one call (migration 0008): the database finishes the hash
from the two parts of the canonical encoding around the previous hash. The chain must be exactly
the one ``entry_hash`` defines, and a database that hashed anything else must not get an entry in."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import create_session_factory, unit_of_work
from leerid_gateway.privacy import service as privacy
from leerid_gateway.privacy.chain import GENESIS, entry_hash, entry_hash_parts, entry_hash_parts_around_sub
from leerid_gateway.privacy.models import PrivacyLogEntry

# Contents that an encoding split at the wrong place would get wrong: the mark's own text in a
# value, a nested "prev" key whose value is the mark's (data sorts before prev), quotes, NUL,
# Dutch and other non-ASCII text, nulls everywhere they may be.
TRICKY: list[dict[str, Any]] = [
    {"purpose": "authenticatie", "sub": uuid.uuid4(), "fields": ["given_name"], "data": None},
    {"purpose": 'één "prev":"\\u0000" ☃', "sub": None, "fields": [], "data": {"prev": "\x00", "n": [None]}},
    {"purpose": '"prev":"\\u0000"', "sub": uuid.uuid4(), "fields": ['"prev":"'], "data": {"a": {"prev": ""}}},
    {"purpose": "\x00", "sub": None, "fields": ["\u0000"], "data": {}},
]


# PostgreSQL's text holds no NUL character (JSON's escaped "\u0000" it does).
STORABLE = [case for case in TRICKY if "\x00" not in case["purpose"]]


def _values(case: dict[str, Any], at: dt.datetime) -> dict[str, Any]:
    return {"at": at, "actor": "staff:an.peeters", "action": "test.append", "request_id": "req-1"} | case


def test_the_two_parts_around_any_previous_hash_are_the_chains_encoding() -> None:
    at = dt.datetime(2026, 12, 2, 3, 40, 1, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    for case, prev in itertools.product(TRICKY, (GENESIS, hashlib.sha256(b"x").hexdigest(), "f" * 64)):
        values = _values(case, at)
        before, after = entry_hash_parts(**values)
        assert hashlib.sha256((before + prev + after).encode()).hexdigest() == entry_hash(prev, **values)


def test_the_three_parts_around_any_previous_hash_and_sub_are_the_chains_encoding() -> None:
    """For a login entry whose sub only the database knows (migration 0009): the parts around the
    previous hash and the sub, whatever the other values hold (the marks' own text included)."""
    at = dt.datetime(2026, 12, 2, 3, 40, 1, 123456, tzinfo=dt.UTC)
    tricky = [*TRICKY, {"purpose": '"sub":"\\u0001"', "fields": ['"sub":"'], "data": {"sub": "\x01"}}]
    subs = (uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1))
    for case, prev, sub in itertools.product(tricky, (GENESIS, "f" * 64), subs):
        values = _values({k: v for k, v in case.items() if k != "sub"}, at)
        before, between, after = entry_hash_parts_around_sub(**values)
        hashed = hashlib.sha256((before + prev + between + str(sub) + after).encode()).hexdigest()
        assert hashed == entry_hash(prev, sub=sub, **values)


async def test_entries_appended_in_one_call_are_the_chain_entry_hash_defines(pg: AsyncEngine) -> None:
    factory = create_session_factory(pg)
    for case in STORABLE:
        async with unit_of_work(factory) as db:
            await privacy.record(db, actor="staff:an.peeters", action="test.append", request_id="r", **case)
    async with unit_of_work(factory) as db:
        entries = list(await db.scalars(select(PrivacyLogEntry).order_by(PrivacyLogEntry.id)))
        # verify() recomputes every entry's hash with entry_hash from what was stored.
        assert (await privacy.verify(db)).ok
    assert [e.prev_hash for e in entries] == [GENESIS] + [e.hash for e in entries[:-1]]
    for entry, case in zip(entries, STORABLE, strict=True):
        assert (entry.purpose, entry.sub, entry.fields, entry.data) == (
            case["purpose"],
            case["sub"],
            case["fields"],
            case["data"],
        )


async def test_a_hash_the_database_got_wrong_stops_the_transaction(pg: AsyncEngine) -> None:
    """As if the function had been changed to hash other bytes than the chain's: it is replaced by
    one that does, inside the test's transaction (PostgreSQL's DDL is transactional)."""
    factory = create_session_factory(pg)
    with pytest.raises(RuntimeError, match="not the chain's"):
        async with unit_of_work(factory) as db:
            source = (
                await db.execute(text("SELECT pg_get_functiondef('leerid_privacy_log_append'::regproc)"))
            ).scalar_one()
            right = "sha256(hashed_before ||"
            wrong = source.replace(right, "sha256('\\x21'::bytea || hashed_before ||")
            assert wrong != source
            await db.execute(text(wrong))
            await privacy.record(db, actor="system", action="test.append", purpose="authenticatie")
    async with unit_of_work(factory) as db:
        assert list(await db.scalars(select(PrivacyLogEntry))) == []
        # The replacement went with the transaction: the function is the migration's again.
        await privacy.record(db, actor="system", action="test.append", purpose="authenticatie")
    async with unit_of_work(factory) as db:
        assert (await privacy.verify(db)).ok
