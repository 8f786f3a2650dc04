"""db.rows(): a statement of the session's transaction, straight on asyncpg once the transaction has
begun, and stored exactly as SQLAlchemy's own execution would store it."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import bindparam, event, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import connection, create_session_factory, rows, unit_of_work
from leerid_gateway.identity.models import Identity
from leerid_gateway.privacy.models import PrivacyLogEntry

_APPEND = insert(PrivacyLogEntry).returning(PrivacyLogEntry.id)
_STORED = text(
    "SELECT at, sub, CAST(fields AS TEXT), CAST(data AS TEXT), data IS NULL, purpose, request_id "
    "FROM privacy_log WHERE id = :id"
)
_NEW_IDENTITY = insert(Identity).returning(Identity.id)
_RENAME = update(Identity).where(Identity.id == bindparam("identity_id"))
_BRUSSELS = dt.timezone(dt.timedelta(hours=2))


def _entry(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        # Not in UTC: UTCDateTime's bind processor must convert it, on both paths alike.
        "at": dt.datetime(2026, 12, 1, 23, 30, 15, 123456, tzinfo=_BRUSSELS),
        "actor": "system",
        "action": "test.rows",
        "sub": uuid.UUID("6f1f8c9e-4a52-4f1c-9d0e-2b7f5c3a1d20"),
        "fields": ["given_name", "school"],
        "purpose": "test",
        "request_id": None,
        "data": None,
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
    }
    return values | changes


def _identity(leer_id: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "sub": uuid.uuid4(),
        "leer_id_uuid": leer_id,
        "given_name": "Ann",
        "family_name": "Peeters",
        "school_code": None,
        "school_name": None,
        "created_at": now,
        "last_login_at": now,
    }


@contextmanager
def executed_by_sqlalchemy(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements SQLAlchemy's cursor ran. An ``after_`` listener: a ``before_cursor_execute``
    one would send every statement through SQLAlchemy (that is what tracing gets)."""
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "after_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", note)


async def test_rows_stores_exactly_what_sqlalchemy_stores(db: AsyncEngine, backend: str) -> None:
    """Type processing is the statement's own: the same values written both ways read back the same,
    byte for byte (the timestamp in UTC, the JSON list and the JSON null, the UUID)."""
    factory = create_session_factory(db)
    for data in (None, {"count": 3, "note": "één"}):
        with executed_by_sqlalchemy(db) as seen:
            async with unit_of_work(factory) as session:
                conn = await connection(session)
                through_sqlalchemy = (await conn.execute(_APPEND, _entry(data=data))).scalar()
                statements = len(seen)
                through_rows = (await rows(session, _APPEND, _entry(data=data)))[0][0]
                # PostgreSQL: on the driver (SQLAlchemy's cursor saw nothing more); SQLite: SQLAlchemy.
                assert len(seen) == statements + (0 if backend == "postgres" else 1)
        async with unit_of_work(factory) as session:
            conn = await connection(session)
            first = (await conn.execute(_STORED, {"id": through_sqlalchemy})).one()
            second = (await conn.execute(_STORED, {"id": through_rows})).one()
        assert tuple(first) == tuple(second)
    async with unit_of_work(factory) as session:
        entry = await session.get(PrivacyLogEntry, through_rows)
        assert entry is not None
        assert entry.at == _entry()["at"] and entry.at.tzinfo == dt.UTC
        assert entry.fields == ["given_name", "school"] and entry.data == {"count": 3, "note": "één"}


async def test_rows_runs_inside_the_transaction_and_rolls_back_with_it(db: AsyncEngine) -> None:
    """Its first statement begins the transaction (through SQLAlchemy); nothing it wrote survives a
    rollback, and what it returns is the row's values."""
    factory = create_session_factory(db)
    with pytest.raises(RuntimeError, match="undo"):
        async with unit_of_work(factory) as session:
            first = (await rows(session, _NEW_IDENTITY, _identity("rolled-back-1")))[0][0]
            second = (await rows(session, _NEW_IDENTITY, _identity("rolled-back-2")))[0][0]
            assert second == first + 1
            await rows(session, _RENAME, {"given_name": "Bo", "identity_id": second})
            found = await rows(
                session, select(Identity.given_name).where(Identity.id == bindparam("id")), {"id": second}
            )
            assert [tuple(r) for r in found] == [("Bo",)]
            raise RuntimeError("undo")
    async with unit_of_work(factory) as session:
        assert (await session.scalars(select(Identity))).all() == []


async def test_a_database_error_is_sqlalchemys_and_names_no_value(db: AsyncEngine, backend: str) -> None:
    """A unique violation on the driver path is an IntegrityError with the SQLSTATE the
    reconciliation's retry reads, and, as with ``hide_parameters``, without the values."""
    factory = create_session_factory(db)
    with pytest.raises(IntegrityError) as raised:
        async with unit_of_work(factory) as session:
            await rows(session, _NEW_IDENTITY, _identity("leer-id-of-a-pupil"))
            await rows(session, _NEW_IDENTITY, _identity("leer-id-of-a-pupil"))
    assert "leer-id-of-a-pupil" not in str(raised.value)
    if backend == "postgres":
        assert raised.value.orig.sqlstate == "23505"  # type: ignore[union-attr]
    async with unit_of_work(factory) as session:  # the connection went back to the pool usable
        assert (await session.scalars(select(Identity))).all() == []


async def test_rows_goes_through_sqlalchemy_while_statements_are_watched(pg: AsyncEngine) -> None:
    """Tracing listens to every statement (``before_cursor_execute``): then none goes past it."""
    seen: list[str] = []

    def watch(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    factory = create_session_factory(pg)
    event.listen(pg.sync_engine, "before_cursor_execute", watch)
    try:
        async with unit_of_work(factory) as session:
            await rows(session, text("SELECT 1"), {})
            await rows(session, _APPEND, _entry())
    finally:
        event.remove(pg.sync_engine, "before_cursor_execute", watch)
    assert len(seen) == 2 and seen[1].startswith("INSERT INTO privacy_log")


async def test_rows_refuses_what_it_cannot_run_as_sqlalchemy_would(pg: AsyncEngine) -> None:
    """Python-side column defaults (``fields`` has one) and values built into the statement are
    SQLAlchemy's execution context's to fill in: refused, not silently left out."""
    factory = create_session_factory(pg)
    async with unit_of_work(factory) as session:
        await rows(session, text("SELECT 1"), {})
        without_fields = {k: v for k, v in _entry().items() if k != "fields"}
        with pytest.raises(TypeError, match="defaults"):
            await rows(session, _APPEND, without_fields)
        with pytest.raises(TypeError, match="named"):
            await rows(session, update(Identity).where(Identity.id == 5), {"given_name": "X"})


async def test_a_connection_lost_under_rows_is_a_dbapi_error_and_the_pool_recovers(pg: AsyncEngine) -> None:
    factory = create_session_factory(pg)
    kill = text("SELECT pg_terminate_backend(:pid)")
    with pytest.raises(DBAPIError):  # the commit of a transaction whose connection is gone
        async with unit_of_work(factory) as session:
            pid = (await rows(session, text("SELECT pg_backend_pid()"), {}))[0][0]  # begins it
            async with pg.connect() as other:
                await other.execute(kill, {"pid": pid})
            with pytest.raises(DBAPIError):
                for _ in range(50):  # until the driver sees the server's close
                    await rows(session, text("SELECT 1"), {})
                    await asyncio.sleep(0.02)
    async with unit_of_work(factory) as session:  # a live connection, not the dead one
        await rows(session, text("SELECT 1"), {})
        assert (await rows(session, text("SELECT pg_backend_pid()"), {}))[0][0] != pid


async def test_rows_takes_none_one_or_many_parameters(db: AsyncEngine) -> None:
    """Arguments are picked by name for every count (itemgetter of one name returns no tuple)."""
    factory = create_session_factory(db)
    async with unit_of_work(factory) as session:
        await connection(session)  # the transaction has begun: PostgreSQL takes the driver path
        assert [tuple(r) for r in await rows(session, text("SELECT 1"), {})] == [(1,)]
        one = text("SELECT CAST(:a AS TEXT)")
        assert [tuple(r) for r in await rows(session, one, {"a": "x"})] == [("x",)]
        three = text("SELECT CAST(:c AS TEXT), CAST(:a AS TEXT), CAST(:b AS TEXT)")
        assert [tuple(r) for r in await rows(session, three, {"a": "1", "b": "2", "c": "3"})] == [
            ("3", "1", "2")
        ]
