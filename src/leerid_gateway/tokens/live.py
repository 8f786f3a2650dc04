"""What introspection must know right now, without a database round trip per call.

PostgreSQL tells every replica about each change that can make a token inactive (triggers in
migration 0003 ``NOTIFY`` on session revocation or deletion, token revocation, client changes), so a
replica may cache session states, revoked token ids and client credentials for as long as its
``LISTEN`` connection is up. When that connection is down (or on SQLite, where there is no
``NOTIFY``), nothing is served from the cache: every call asks the database. Correctness first,
speed when it is safe.

A change that arrives while a value is being read from the database would be lost if that value
were then cached; a generation counter, bumped by every notification, prevents that.

The same connection serves other packages' caches (``Subscriber``: the partner schools of
access/cache.py), so a replica holds one LISTEN connection, not one per cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import exists, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leerid_gateway.clients.models import InternalClient
from leerid_gateway.identity.models import Identity
from leerid_gateway.kit.lru import LRU
from leerid_gateway.sessions.models import BrowserSession
from leerid_gateway.tokens.models import RevokedToken

log = logging.getLogger(__name__)

MAX_REVOKED = 100_000
SESSION_CHANNEL = "leerid_sessions"
TOKEN_CHANNEL = "leerid_tokens"  # noqa: S105 (a channel name)
CLIENT_CHANNEL = "leerid_clients"


class Subscriber(Protocol):
    """A cache of another package that PostgreSQL keeps current over this replica's LISTEN.

    ``requires``: a query answering whether the database notifies this channel at all (its trigger
    exists: a replica started before its migration must not trust a cache nobody invalidates).
    """

    channel: str
    requires: str

    def notified(self, payload: str) -> None: ...

    def listening(self, value: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class SessionState:
    sub: str
    revoked: bool
    absolute_expires_at: float
    last_seen_at: float


@dataclass(frozen=True, slots=True)
class ClientState:
    secret_hash: bytes
    revoked: bool


class LiveState:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        database_url: str,
        *,
        max_entries: int,
        subscribers: Sequence[Subscriber] = (),
    ) -> None:
        self._factory = factory
        self._subscribers = {subscriber.channel: subscriber for subscriber in subscribers}
        self._notified: set[str] = set()  # the subscribers' channels the database does notify
        self._warned = False
        url = make_url(database_url)
        self._dsn = (
            url.set(drivername="postgresql").render_as_string(hide_password=False)
            if url.get_backend_name() == "postgresql"
            else None
        )
        self._sessions: LRU[str, SessionState] = LRU(max_entries)
        # While listening: every revoked, unexpired jti (revocations are rare; bounded by
        # MAX_REVOKED, beyond which the database is asked instead). None: not known.
        self._revoked: dict[str, float] | None = None
        self._pending: list[str] | None = None
        self._clients: LRU[str, ClientState] = LRU(1000)
        self._generation = 0
        self._listening = False
        self._task: asyncio.Task[None] | None = None
        self.listening_changed = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._listening

    async def start(self) -> None:
        if self._dsn is not None:
            self._task = asyncio.create_task(self._listen_forever(), name="live-state-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- notifications ---------------------------------------------------------------------------
    def _on_notify(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        self._generation += 1
        if channel == SESSION_CHANNEL:
            self._sessions.pop(payload)
        elif channel == TOKEN_CHANNEL:
            if self._pending is not None:
                self._pending.append(payload)  # arrived while the set was being loaded
            if self._revoked is not None:
                self._revoked[payload] = time.time() + 3600  # at most the longest token lifetime
                if len(self._revoked) > MAX_REVOKED:
                    self._revoked = None
        elif channel == CLIENT_CHANNEL:
            self._clients.pop(payload)
        elif (subscriber := self._subscribers.get(channel)) is not None:
            subscriber.notified(payload)

    def _set_listening(self, value: bool) -> None:
        self._generation += 1
        self._sessions.clear()
        self._revoked = None
        self._clients.clear()
        self._listening = value
        for channel, subscriber in self._subscribers.items():
            subscriber.listening(value and channel in self._notified)
        self.listening_changed.set()

    async def _listen_forever(self) -> None:
        import asyncpg

        backoff = 0.5
        while True:
            lost = asyncio.Event()
            conn = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, timeout=10, server_settings={"application_name": "leerid-gateway-listener"}
                )
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in (SESSION_CHANNEL, TOKEN_CHANNEL, CLIENT_CHANNEL, *self._subscribers):
                    await conn.add_listener(channel, self._on_notify)
                self._notified = await self._notifying(conn)
                self._set_listening(True)
                # After LISTEN, so no revocation can fall between the load and the notifications;
                # those that arrive during the load are kept in _pending and merged.
                self._pending = []
                loaded = await self._load_revoked()
                if loaded is not None:
                    for jti in self._pending:
                        loaded[jti] = time.time() + 3600
                self._pending = None
                self._revoked = loaded
                backoff = 0.5
                while not lost.is_set():
                    # A cheap liveness probe: a half-open TCP connection must not keep us trusting
                    # a cache that no longer hears about revocations.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=5)
                    if not lost.is_set():
                        # The probe also asks whether the subscribers' triggers are still there
                        # and enabled (a downgrade, ALTER TABLE … DISABLE TRIGGER).
                        notified = await asyncio.wait_for(self._notifying(conn), timeout=3)
                        for channel in notified ^ self._notified:
                            self._subscribers[channel].listening(channel in notified)
                        self._notified = notified
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: stop trusting the cache, reconnect
                log.warning("revocation listener lost (%s); serving from the database", type(exc).__name__)
            finally:
                if self._listening:
                    self._set_listening(False)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10)

    async def _notifying(self, conn: Any) -> set[str]:
        """The subscribers' channels whose notifications the database does send (one round trip;
        ``SELECT 1`` when there are none)."""
        if not self._subscribers:
            await conn.execute("SELECT 1")
            return set()
        checks = ", ".join(f"({subscriber.requires})" for subscriber in self._subscribers.values())
        answers = await conn.fetchrow(f"SELECT {checks}")
        notified = {channel for channel, ok in zip(self._subscribers, answers, strict=True) if ok}
        for channel in self._subscribers.keys() - notified:
            if channel in self._notified or not self._warned:
                log.warning("no notifications on %s (migration missing?): not cached", channel)
        self._warned = True
        return notified

    # --- reads ------------------------------------------------------------------------------------
    async def _load_revoked(self) -> dict[str, float] | None:
        now = time.time()
        async with self._factory() as db:
            rows = (
                await db.execute(
                    select(RevokedToken.jti, RevokedToken.expires_at)
                    .where(RevokedToken.expires_at > dt.datetime.now(dt.UTC))
                    .limit(MAX_REVOKED + 1)
                )
            ).all()
        if len(rows) > MAX_REVOKED:
            return None
        return {jti: max(expires.timestamp(), now) for jti, expires in rows}

    async def token_state(self, sid: str, jti: str) -> tuple[SessionState | None, bool]:
        """The token's session (None if gone) and whether its jti was revoked (RFC 7009)."""
        if self._listening:
            cached_session = self._sessions.get(sid)
            revoked = self._revoked
            if cached_session is not None and revoked is not None:
                return cached_session, jti in revoked
        generation = self._generation
        async with self._factory() as db:
            row = (
                await db.execute(
                    select(
                        Identity.sub,
                        BrowserSession.revoked_at,
                        BrowserSession.absolute_expires_at,
                        BrowserSession.last_seen_at,
                        exists().where(RevokedToken.jti == jti),
                    )
                    .join(Identity, Identity.id == BrowserSession.identity_id)
                    .where(BrowserSession.id == sid)
                )
            ).first()
            if row is None:
                return None, bool(await db.scalar(select(exists().where(RevokedToken.jti == jti))))
        sub, revoked_at, absolute, last_seen, jti_revoked = row
        state = SessionState(str(sub), revoked_at is not None, absolute.timestamp(), last_seen.timestamp())
        if self._listening and generation == self._generation:
            self._sessions.put(sid, state)
        return state, bool(jti_revoked)

    async def client(self, client_id: str) -> ClientState | None:
        if self._listening:
            cached = self._clients.get(client_id)
            if cached is not None:
                return cached
        generation = self._generation
        async with self._factory() as db:
            row = (
                await db.execute(
                    select(InternalClient.secret_hash, InternalClient.revoked_at).where(
                        InternalClient.client_id == client_id
                    )
                )
            ).first()
        if row is None:
            return None
        state = ClientState(bytes(row[0]), row[1] is not None)
        if self._listening and generation == self._generation:
            self._clients.put(client_id, state)
        return state
