"""The process's view of the signing keys: loaded at start-up, refreshed in the background.

Requests never touch the database for keys (no nested transaction, nothing on the hot path).
Another replica's rotation becomes visible within ``refresh_every`` seconds; the rotation procedure
publishes a new key long before it signs with it, so that is always in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leerid_gateway.kit.crypto import Sealer
from leerid_gateway.tokens import keys as key_store
from leerid_gateway.tokens.keys import LoadedKeys

log = logging.getLogger(__name__)


class KeyRing:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        sealer: Sealer,
        alg: str,
        *,
        max_token_ttl: int,
        refresh_every: float,
    ) -> None:
        self._factory = factory
        self._sealer = sealer
        self._alg = alg
        self._max_token_ttl = max_token_ttl
        self.refresh_every = refresh_every
        self._keys: LoadedKeys | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with self._factory() as db, db.begin():
            await key_store.ensure_active(db, self._sealer, self._alg)
        await self.reload()
        self._task = asyncio.create_task(self._refresh_forever(), name="keyring-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def reload(self) -> LoadedKeys:
        async with self._factory() as db, db.begin():
            self._keys = await key_store.load(db, self._sealer, max_token_ttl=self._max_token_ttl)
        return self._keys

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_every)
            try:
                await self.reload()
            except Exception:  # keep serving with the keys we have; the next round retries
                log.warning("signing keys could not be reloaded", exc_info=False)

    def current(self) -> LoadedKeys:
        if self._keys is None:
            raise RuntimeError("the key ring was not started")
        return self._keys
