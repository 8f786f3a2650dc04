"""The process's view of the signing keys, reloaded from the database when it may be stale."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leerid_gateway.kit.crypto import Sealer
from leerid_gateway.tokens import keys as key_store
from leerid_gateway.tokens.keys import LoadedKeys

# Another replica may rotate keys; the JWKS cache lifetime (JWKS_MAX_AGE) is far longer than this.
RELOAD_AFTER = 30.0


class KeyRing:
    def __init__(self, factory: async_sessionmaker[AsyncSession], sealer: Sealer, alg: str) -> None:
        self._factory = factory
        self._sealer = sealer
        self._alg = alg
        self._keys: LoadedKeys | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._factory() as db, db.begin():
            await key_store.ensure_active(db, self._sealer, self._alg)
        await self.reload()

    async def reload(self) -> LoadedKeys:
        async with self._factory() as db:
            self._keys = await key_store.load(db, self._sealer)
        return self._keys

    async def current(self) -> LoadedKeys:
        keys = self._keys
        if keys is not None and time.monotonic() - keys.loaded_at < RELOAD_AFTER:
            return keys
        async with self._lock:
            keys = self._keys
            if keys is not None and time.monotonic() - keys.loaded_at < RELOAD_AFTER:
                return keys
            return await self.reload()
