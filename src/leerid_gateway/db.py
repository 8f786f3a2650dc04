"""Database plumbing: engine, session factory, declarative base and the unit-of-work helper.

PostgreSQL (asyncpg) is the production database; SQLite (aiosqlite) the embedded default. The schema
is made only by the Alembic migrations in ``migrations/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import operator
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, cast

from sqlalchemy import DateTime, Executable, MetaData, TextClause, event, text
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool, PoolProxiedConnection, QueuePool
from sqlalchemy.types import NullType, TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime()}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def _no_debug_records(record: logging.LogRecord) -> bool:
    """At DEBUG, SQLAlchemy logs every result row ("Row (…, 'Lotte', …)", ``hide_parameters`` or
    not) and aiosqlite every statement with its parameters. A pupil's data must never reach a log
    line, whatever LEERID_LOG_LEVEL says, so those records go; SQL statements (INFO) stay."""
    return record.levelno > logging.DEBUG


_LEAKY_DEBUG_LOGGERS = ("sqlalchemy.engine.Engine", "aiosqlite")


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """An engine with the per-backend settings that make concurrent use safe.

    ``hide_parameters``: a database error must never carry a pupil's name into a log line; nor may
    debug logging of the database drivers (``_no_debug_records``).
    """
    for name in _LEAKY_DEBUG_LOGGERS:
        logger = logging.getLogger(name)
        if _no_debug_records not in logger.filters:
            logger.addFilter(_no_debug_records)
    if is_postgres(url):
        engine = create_async_engine(
            url,
            hide_parameters=True,
            # Every connection, once made, is kept and reused: an "overflow" connection would be
            # closed when it came back to a full pool, so every burst above the pool size paid for
            # new connections (a backend process, authentication, asyncpg's type introspection and
            # every prepared statement again: ~6 % of a login's CPU at 8 concurrent logins on a pool
            # of 5 + 5, docs/performance.md). Made lazily, up to ``pool_size``.
            pool_size=pool_size,
            max_overflow=0,
            # Below the idle timeouts of load balancers and NAT gateways that drop idle connections
            # without a FIN (AWS NLB: 350 s), which the checkout check cannot see.
            pool_recycle=300,
            connect_args={"server_settings": {"application_name": "leerid-gateway"}},
        )
        event.listen(engine.sync_engine, "checkout", _closed_connections_are_replaced)
        return engine
    engine = create_async_engine(url, hide_parameters=True, connect_args={"timeout": 30})
    _configure_sqlite(engine)
    return engine


def _closed_connections_are_replaced(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server has closed (restart, failover, pg_terminate_backend) is
    replaced at checkout, so a request never fails on a connection that died while idle.

    This does what ``pool_pre_ping`` does without its round trip (one per checkout, three per
    login, ~14 % of a login's CPU in docs/performance.md): asyncpg reads from every idle pooled
    socket, so a server-side close is seen when it happens and ``is_closed()`` is up to date.
    Raising DisconnectionError here makes the pool discard the connection and check out another
    (SQLAlchemy, "Connection Pooling → Disconnect Handling - Pessimistic", custom checkout event).
    What it cannot see is a connection dropped silently on the way (a middlebox's idle timeout, no
    FIN): pre-ping would have replaced it, here its first statement fails (one failed request; the
    pool then replaces all older connections). ``pool_recycle`` is kept below the usual idle
    timeouts of such middleboxes for that reason.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _configure_sqlite(engine: AsyncEngine) -> None:
    """SQLite: foreign keys on, WAL, and BEGIN IMMEDIATE so a writer never fails on lock upgrade.

    pysqlite's own transaction handling is turned off and we emit BEGIN ourselves (the recipe from
    SQLAlchemy's SQLite dialect documentation, "Serializable isolation / Savepoints / Transactional DDL").
    """
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after the unit of work; relationships are
    # lazy="raise" in the models, so nothing loads behind our back.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


# One advisory lock orders every writer of an append-only journal (identity events, privacy log):
# ids come from sequences, handed out before commit, so without it a reader could see id 6 committed
# before id 5 and move its cursor past 5. Held to the end of the transaction. One lock, not one per
# journal, so that no two transactions can take them in opposite orders.
JOURNAL_LOCK_KEY = 0x1EE51D_0E
_JOURNAL_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


async def connection(session: AsyncSession) -> AsyncConnection:
    """The connection of the session's current transaction, asked for once per transaction.

    ``AsyncSession.connection()`` costs a greenlet round (~21 µs here) on every call; a login's
    admission asks for it eight times. Cached in ``session.info`` against the transaction object, so
    a new transaction of the same session gets its own connection.
    """
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_CONNECTION)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1]  # type: ignore[no-any-return]
    conn = await session.connection()
    session.info[_CONNECTION] = (session.sync_session.get_transaction(), conn)
    return conn


_CONNECTION = "leerid_gateway.connection"
_DRIVER = "leerid_gateway.driver"


# (statement id, dialect, parameter names) → the statement as the driver runs it
_IN_TRANSACTION: dict[tuple[int, str, tuple[str, ...]], _DriverStatement] = {}
_MAX_STATEMENTS = 256


@dataclass(frozen=True, slots=True)
class _DriverStatement:
    statement: Executable  # kept, so that its id() is not reused while it is cached
    sql: str
    names: tuple[str, ...]  # the parameters, in the order of $1, $2, …
    processed: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, bind processor), where there is one
    getter: Callable[[Mapping[str, Any]], tuple[Any, ...]] | None  # itemgetter of two or more names

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The statement's arguments, each through its type's bind processor; picked in C (an
        admission has 27 parameters, 8 of them processed)."""
        getter = self.getter
        values = list(getter(params)) if getter is not None else [params[name] for name in self.names]
        for position, processor in self.processed:
            values[position] = processor(values[position])
        return values


@dataclass(frozen=True, slots=True)
class DriverTransaction:
    """A transaction run straight on a pooled asyncpg connection (``driver_unit_of_work``): what
    ``rows()`` needs and nothing else. Work that needs SQLAlchemy's Session calls ``orm()``, which
    raises ``NeedsSession``, and is run again in a ``unit_of_work``."""

    driver: Any  # the asyncpg connection
    dialect: Dialect


# What the statements of a login's admission run on: a Session, or a transaction on the driver.
Db = AsyncSession | DriverTransaction


class NeedsSession(Exception):
    """Work on a ``DriverTransaction`` reached a step that needs SQLAlchemy's Session (the ORM,
    several parameter sets at once, a statement with a row count). Nothing it did is kept: its
    transaction is rolled back, and the caller runs the work again in a ``unit_of_work``."""


def orm(db: Db) -> AsyncSession:
    """The Session behind ``db``; on a ``DriverTransaction``, ``NeedsSession``."""
    if isinstance(db, DriverTransaction):
        raise NeedsSession
    return db


def dialect_name(db: Db) -> str:
    return db.dialect.name if isinstance(db, DriverTransaction) else db.get_bind().dialect.name


def driver_transactions(engine: AsyncEngine) -> bool:
    """Whether ``driver_unit_of_work`` may be used: asyncpg, and nothing listening to statements
    (the tracing's spans come from SQLAlchemy's statement events; with tracing on, every statement
    goes through SQLAlchemy)."""
    return engine.dialect.driver == "asyncpg" and not engine.sync_engine.dispatch.before_cursor_execute


class _Warm:
    """Pooled asyncpg connections kept warm for the login's driver paths (``fetchrow_autocommit``,
    ``driver_unit_of_work``): a connection those paths are done with waits here for their next
    statement instead of going back to SQLAlchemy's pool, whose checkout and return (a greenlet, the
    pool's queue, its events, reset-on-return) cost ~10 % of a login's CPU, side by side
    (docs/performance.md, session 10). A login takes three.

    Every connection still comes from the engine's pool (its size, its connect arguments and checkout
    events), and goes back to it, whole and clean, when any of these holds:
    - keeping it would leave the pool with no connection to give, idle or yet to be made: whoever
      else needs one (a Session, /readyz's probe, the purge) never waits for one that waits here;
    - it has waited here ``WARM_IDLE_SECONDS`` (a timer: a quiet gateway holds none);
    - ``WARM_MAX`` others already wait here;
    - it left the pool ``WARM_MAX_AGE_SECONDS`` ago: the pool's next checkout then applies
      ``pool_recycle`` and any pool-wide invalidation SQLAlchemy has made since (so such an
      invalidation, made on a Session's path, reaches a warm connection within that time);
    - its pool is no longer the engine's (``engine.dispose()``), or one of these paths saw a
      connection fail (then every connection that left the pool before the failure goes back, as
      SQLAlchemy would invalidate them).
    A connection whose statement failed or whose state is not known is never kept (the callers
    invalidate it). Counted as idle, not in use, in the pool's gauges (kit/metrics.py), and as
    checked out, which it is, where /readyz decides whether a probe would have to wait (ops.py).

    Nothing here refers to the engine: the entries refer to their pool only while they wait, so an
    engine nobody uses any more is not kept alive by ``_WARM``.
    """

    __slots__ = ("_failed_at", "_idle", "_sweep", "_sweep_loop")

    def __init__(self) -> None:
        # (given back at, the lease), oldest first; the last one is reused first
        self._idle: list[tuple[float, _Leased]] = []
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None
        self._failed_at = -1.0

    def __len__(self) -> int:
        return len(self._idle)

    async def lease(self, engine: AsyncEngine) -> _Leased:
        """The most recently kept connection that is still good, else one from the pool."""
        idle = self._idle
        if idle:
            pool, now = engine.sync_engine.pool, time.monotonic()
            while idle:
                _, kept = idle.pop()
                if kept.pool is pool and now - kept.since < WARM_MAX_AGE_SECONDS and not _closed(kept.pooled):
                    return kept
                kept.pooled.close()
        pool = engine.sync_engine.pool  # the pool it comes from, even if dispose() runs meanwhile
        pooled = await engine.raw_connection()
        return _Leased(time.monotonic(), pool, pooled)

    def give_back(self, engine: AsyncEngine, leased: _Leased) -> None:
        """Keep a clean connection for the next statement, or return it to the pool."""
        pool, pooled, now = leased.pool, leased.pooled, time.monotonic()
        if (
            pool is not engine.sync_engine.pool
            or not isinstance(pool, QueuePool)
            or not (pool.checkedin() > 0 or pool.checkedout() < pool.size())  # none left for others
            or len(self._idle) >= WARM_MAX
            or leased.since <= self._failed_at
            or now - leased.since >= WARM_MAX_AGE_SECONDS
            or _closed(pooled)
        ):
            pooled.close()
            return
        self._idle.append((now, leased))
        loop = asyncio.get_running_loop()
        if self._sweep is None or self._sweep_loop is not loop:  # none yet, or one on a loop now gone
            self._sweep, self._sweep_loop = loop.call_later(WARM_IDLE_SECONDS, self._swept), loop

    def lost(self, engine: AsyncEngine, pooled: PoolProxiedConnection, exc: BaseException) -> None:
        """A connection failed: SQLAlchemy's own pool-wide invalidation (what its Connection does on
        a disconnect; it invalidates this connection too), and none that left the pool before now is
        kept, none waiting is used."""
        self._failed_at = time.monotonic()
        self.release()
        engine.sync_engine.pool._invalidate(pooled, exc)

    def release(self) -> None:
        """Every waiting connection back to its pool."""
        idle, self._idle = self._idle, []
        for _, kept in idle:
            kept.pooled.close()

    def drop(self) -> None:
        """The pool was disposed of already: the waiting connections are closed, not returned."""
        idle, self._idle = self._idle, []
        for _, kept in idle:
            kept.pooled.invalidate()

    def _swept(self) -> None:
        self._sweep = self._sweep_loop = None
        cutoff = time.monotonic() - WARM_IDLE_SECONDS
        waited = [entry for entry in self._idle if entry[0] <= cutoff]
        if waited:
            self._idle = [entry for entry in self._idle if entry[0] > cutoff]
            for _, kept in waited:
                kept.pooled.close()
        if self._idle:
            loop = asyncio.get_running_loop()
            later = self._idle[0][0] + WARM_IDLE_SECONDS - time.monotonic()
            self._sweep, self._sweep_loop = loop.call_later(max(later, 0.01), self._swept), loop


class _Leased(NamedTuple):
    since: float  # when it left the pool (time.monotonic())
    pool: Pool  # the pool it left
    pooled: PoolProxiedConnection


def _closed(pooled: PoolProxiedConnection) -> bool:
    """Closed by the server or by us (asyncpg sees a server's close when it happens: db.py's checkout
    event says how)."""
    driver = pooled.driver_connection
    return driver is None or bool(driver.is_closed())


WARM_MAX = 4  # connections waiting at once, at most
WARM_IDLE_SECONDS = 1.0
WARM_MAX_AGE_SECONDS = 30.0
_WARM: weakref.WeakKeyDictionary[Engine, _Warm] = weakref.WeakKeyDictionary()


def _warm(engine: AsyncEngine) -> _Warm:
    sync_engine = engine.sync_engine
    warm = _WARM.get(sync_engine)
    if warm is None:
        warm = _WARM[sync_engine] = _Warm()
        # Whoever disposes of the engine without release_warm() first: nothing stays checked out.
        event.listen(sync_engine, "engine_disposed", lambda _engine: warm.drop())
    return warm


def release_warm(engine: AsyncEngine) -> None:
    """Return the connections kept warm to the engine's pool: call before ``engine.dispose()``."""
    warm = _WARM.get(engine.sync_engine)
    if warm is not None:
        warm.release()


def warm_idle(engine: AsyncEngine) -> int:
    """How many of the pool's connections wait in ``_Warm``: checked out, as the pool counts them,
    but idle."""
    warm = _WARM.get(engine.sync_engine)
    return 0 if warm is None else len(warm)


@asynccontextmanager
async def driver_unit_of_work(engine: AsyncEngine) -> AsyncIterator[DriverTransaction]:
    """One transaction straight on a pooled asyncpg connection: commit when the block ends
    normally, roll back on any exception. For the login's admission (oidc/service.py): a Session's
    transaction cost ~0.9 ms of CPU more than the same statements on the driver (the Session, its
    begin and commit, the connection it checks out, the first statement through SQLAlchemy;
    docs/performance.md, session 5), a tenth of a login.

    The connection comes from the engine's pool (checkout events and all), as
    ``fetchrow_autocommit``'s does, and is kept warm for the next statement (``_Warm``) once the
    transaction ended cleanly. If the transaction could not be ended cleanly (the rollback or
    the commit failed, or the task was cancelled while a statement ran), the connection's state is
    not known and it is discarded; a connection that failed takes every older pooled connection with
    it, as SQLAlchemy does on a disconnect. READ COMMITTED, the server's default, as a Session's.
    A task cancelled while its COMMIT is under way cannot know whether the server committed (with
    any client): the transaction is then committed whole or not at all, and its connection is
    discarded.
    """
    warm = _warm(engine)
    leased = await warm.lease(engine)
    pooled = leased.pooled
    driver: Any = pooled.driver_connection
    clean = False
    try:
        transaction = driver.transaction()
        await _ended(transaction.start, driver, "BEGIN")
        try:
            yield DriverTransaction(driver, engine.dialect)
        except BaseException:
            # A rollback that fails (after a cancelled statement: another operation is in progress)
            # leaves the connection unclean; the work's own exception is what the caller sees.
            with contextlib.suppress(Exception):
                await transaction.rollback()
                clean = True
            raise
        try:
            await _ended(transaction.commit, driver, "COMMIT")
        except DBAPIError as exc:
            # Refused by the server (a serialization failure, a deferred constraint): it has ended
            # the transaction, and the connection is clean.
            clean = not exc.connection_invalidated and _is_server_error(exc.orig)
            raise
        clean = True
    except BaseException as exc:
        if not clean:
            if _is_disconnect(exc) or (
                isinstance(exc, DBAPIError)
                and (exc.connection_invalidated or (exc.orig is not None and _is_disconnect(exc.orig)))
            ):
                warm.lost(engine, pooled, exc)
            else:
                pooled.invalidate()
        raise
    finally:
        if clean:
            warm.give_back(engine, leased)
        else:
            pooled.close()  # invalidated above: the pool makes a new one


def _is_server_error(exc: BaseException | None) -> bool:
    import asyncpg

    return isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, asyncpg.PostgresConnectionError)


async def _ended(step: Callable[[], Awaitable[Any]], driver: Any, sql: str) -> None:
    """BEGIN or COMMIT, with the driver's errors as SQLAlchemy's, as ``rows()`` raises them."""
    import asyncpg

    try:
        await step()
    except asyncpg.PostgresError as exc:
        raise _wrapped(exc, sql) from exc
    except (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError, OSError) as exc:
        if isinstance(exc, TimeoutError):
            raise
        lost = driver.is_closed()
        raise DBAPIError(sql, None, exc, hide_parameters=True, connection_invalidated=lost) from exc


def _wrapped(exc: Any, sql: str) -> DBAPIError:
    """As SQLAlchemy's asyncpg dialect does: the server's message without its DETAIL, which quotes
    values ("Key (leer_id_uuid)=(…) already exists"), and the SQLSTATE."""
    orig = type(exc)(exc.args[0] if exc.args else type(exc).__name__)
    orig.sqlstate = exc.sqlstate  # a class attribute, but not for codes asyncpg does not know
    wrapper = IntegrityError if str(exc.sqlstate).startswith("23") else DBAPIError
    return wrapper(sql, None, orig, hide_parameters=True)


async def rows(session: Db, statement: Executable, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
    """Run one statement, built once at import (Core or ``text()``), in the session's transaction and
    return its rows (none for a statement that returns none).

    On PostgreSQL, on a ``DriverTransaction`` or once SQLAlchemy has begun the Session's transaction
    (its first statement), the statement goes straight to that transaction's asyncpg connection: the
    SQL SQLAlchemy renders for asyncpg, compiled once, and every parameter through its type's own
    bind processor (UTC datetimes, JSON, UUIDs), as SQLAlchemy's execution context would. That
    context, its cursor and its result cost more CPU than the round trip itself
    (bench/driver_bench.py), and an admission runs six such statements. Not for statements with
    Python-side column defaults, values embedded in the statement or expanding parameters (refused
    when compiled), nor for several parameter sets (executemany).

    What SQLAlchemy still does for a Session: begin, commit and roll back the transaction (the
    driver path is only taken while asyncpg reports a transaction open, so a statement can never run
    outside it), and every statement while anything listens to statements (the tracing: one span
    per statement). A database error comes back as SQLAlchemy's ``IntegrityError`` or ``DBAPIError``
    with the driver's exception as ``orig`` and no parameters in its text, as through SQLAlchemy
    (the reconciliation's retry reads its SQLSTATE).

    Rows are the driver's records: plain values, the ``uuid`` columns as asyncpg's subclass of
    ``uuid.UUID``, timestamps timezone-aware in UTC.
    """
    if isinstance(session, DriverTransaction):
        return await _on_driver(session.driver, session.dialect, statement, params)
    conn = await connection(session)
    driver = await _driver(session, conn)
    if driver is None or conn.sync_engine.dispatch.before_cursor_execute or not driver.is_in_transaction():
        result = await conn.execute(statement, dict(params))
        return result.all() if result.returns_rows else ()
    return await _on_driver(driver, conn.dialect, statement, params)


async def _on_driver(
    driver: Any, dialect: Dialect, statement: Executable, params: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    names = tuple(params)
    key = (id(statement), dialect.name, names)
    prepared = _IN_TRANSACTION.get(key)
    if prepared is None:
        if len(_IN_TRANSACTION) >= _MAX_STATEMENTS:  # statements built per call: a caller's mistake
            _IN_TRANSACTION.clear()
        prepared = _IN_TRANSACTION[key] = _for_driver(dialect, statement, names)
    args = prepared.args(params)
    import asyncpg

    try:
        return await driver.fetch(prepared.sql, *args)  # type: ignore[no-any-return]
    except asyncpg.PostgresError as exc:
        raise _wrapped(exc, prepared.sql) from exc
    # The connection is gone, or a value the driver cannot send; or the server's close arrived while
    # the driver sat idle and it is out of step (InternalClientError, "another operation is in progress").
    except (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError) as exc:
        lost = driver.is_closed() or isinstance(exc, asyncpg.ConnectionDoesNotExistError)
        raise DBAPIError(prepared.sql, None, exc, hide_parameters=True, connection_invalidated=lost) from exc


async def _driver(session: AsyncSession, conn: AsyncConnection) -> Any:
    """The asyncpg connection under the session's current transaction (None on SQLite), asked for
    once per transaction like ``connection()``."""
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_DRIVER)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1]
    driver = (await conn.get_raw_connection()).driver_connection if conn.dialect.driver == "asyncpg" else None
    session.info[_DRIVER] = (transaction, driver)
    return driver


def _for_driver(dialect: Dialect, statement: Executable, names: tuple[str, ...]) -> _DriverStatement:
    compiled: Any = cast(Any, statement).compile(dialect=dialect, column_keys=list(names))
    if compiled.insert_prefetch or compiled.update_prefetch:
        raise TypeError("rows() cannot fill in Python-side column defaults: pass every column")
    positions = tuple(compiled.positiontup or ())
    for name in positions:
        bind = compiled.binds[name]
        if bind.expanding or name not in names:
            raise TypeError(f"rows() takes named, non-expanding parameters only, not {name!r}")
    processors = [
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in positions
    ]
    processed = tuple((i, processor) for i, processor in enumerate(processors) if processor is not None)
    getter = operator.itemgetter(*positions) if len(positions) >= 2 else None  # of one name: no tuple
    return _DriverStatement(statement, compiled.string, positions, processed, getter)


async def flush_pending(session: AsyncSession) -> None:
    """Flush only if the session holds unwritten changes (a flush of nothing still costs)."""
    if session.new or session.dirty or session.deleted:
        await session.flush()


async def journal_lock(session: AsyncSession) -> None:
    """Serialise journal writers until commit (PostgreSQL; SQLite has a single writer anyway).

    Pending ORM changes are written first: the journal lock is the last lock a transaction takes,
    so no row change may wait (for a row lock held by, say, an erasure) while it is held.
    """
    await flush_pending(session)
    conn = await connection(session)
    if conn.dialect.name == "postgresql":
        await conn.execute(_JOURNAL_LOCK, {"k": JOURNAL_LOCK_KEY})


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commit when the block ends normally, roll back on any exception.

    Everything that belongs together (a change, its privacy-log entry, its event) goes inside one
    such block: the outbox rule of docs/architecture.md.
    """
    async with factory() as session, session.begin():
        yield session


# statement id → (the statement, its SQL as SQLAlchemy renders it for asyncpg, parameter order)
_DRIVER_SQL: dict[int, tuple[TextClause, str, tuple[str, ...]]] = {}


async def fetchrow_autocommit(
    engine: AsyncEngine, statement: TextClause, params: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """Run one statement on its own (autocommit) straight on a pooled asyncpg connection: PostgreSQL.

    For the single statements of the login's hot path (oidc/store.py). Through a SQLAlchemy
    ``Connection`` such a statement cost twice its own CPU again (setting and resetting the
    autocommit characteristic, the execution context, the result: 315 against 147 µs,
    bench/driver_bench.py). The SQL is the one SQLAlchemy renders for asyncpg, compiled once, for
    ``text()`` statements with untyped, non-expanding parameters only (no type processing is
    skipped: there is none). The connection comes from the same pool, checkout events and all,
    and is kept warm for the next statement (``_Warm``); a single statement is atomic by itself.

    - When something listens to the engine's statements (``before_cursor_execute``: the
      OpenTelemetry instrumentation when tracing is on), the statement goes through SQLAlchemy so
      that it is seen like every other.
    - A connection whose statement failed is discarded (its state is not known: a cancelled
      statement, a server gone). When the connection itself failed, every connection the pool made
      before it is replaced at its next checkout, as SQLAlchemy does on a disconnect: one failed
      login, not one per pooled connection, after a failover or a middlebox's silent drop.
    """
    sync_engine = engine.sync_engine
    if sync_engine.dispatch.before_cursor_execute:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            row = (await conn.execute(statement, dict(params))).first()
        return None if row is None else tuple(row)
    compiled = _DRIVER_SQL.get(id(statement))
    if compiled is None:
        compiled = _DRIVER_SQL[id(statement)] = _driver_sql(engine, statement)
    _, sql, names = compiled
    warm = _warm(engine)
    leased = await warm.lease(engine)
    pooled = leased.pooled
    try:
        row = await pooled.driver_connection.fetchrow(sql, *[params[name] for name in names])  # type: ignore[union-attr]
    except BaseException as exc:
        if _is_disconnect(exc):
            warm.lost(engine, pooled, exc)
        else:
            pooled.invalidate()
        pooled.close()
        raise
    warm.give_back(engine, leased)
    return None if row is None else tuple(row)


def _driver_sql(engine: AsyncEngine, statement: TextClause) -> tuple[TextClause, str, tuple[str, ...]]:
    if engine.dialect.driver != "asyncpg":
        raise TypeError("fetchrow_autocommit runs on asyncpg only")
    rendered = statement.compile(dialect=engine.dialect)
    for bind in rendered.binds.values():
        if bind.expanding or not isinstance(bind.type, NullType):
            raise TypeError(f"fetchrow_autocommit takes untyped, non-expanding parameters, not {bind.key!r}")
    return statement, rendered.string, tuple(rendered.positiontup or ())


def _is_disconnect(exc: BaseException) -> bool:
    import asyncpg

    # TimeoutError is an OSError too, but a slow statement is no dead connection.
    connection_failed = isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.InterfaceError | OSError)
    return connection_failed and not isinstance(exc, TimeoutError)
