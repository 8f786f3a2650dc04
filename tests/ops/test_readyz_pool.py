"""/readyz when every pooled connection is at work: the pool makes no extra connection (db.py), so
the readiness check must not queue for one and take a busy replica out of rotation."""

from __future__ import annotations

import asyncio
import json
import secrets

from sqlalchemy import text

from leerid_gateway.app import build_gateway
from leerid_gateway.db import fetchrow_autocommit, release_warm, warm_idle
from leerid_gateway.gateway import Gateway
from leerid_gateway.ops import readyz
from leerid_gateway.settings import Settings


def _settings(pg_url: str) -> Settings:
    return Settings(
        database_url=pg_url,
        database_pool_size=2,
        oidc_issuer="http://127.0.0.1:9",  # nothing listens: the provider check fails, not ours
        oidc_client_id="x",
        oidc_client_secret=secrets.token_urlsafe(24),
        secret_key=secrets.token_urlsafe(48),
        allowed_return_urls=["https://eteacher.example/"],
    )


async def _database_ok_at_once_with_the_listener(gateway: Gateway) -> None:
    """Once the revocation listener listens, its connection vouches for the database: no 2-second
    wait for the pool."""
    await gateway.live.start()
    async with asyncio.timeout(10):
        while not gateway.live.listening:
            await asyncio.sleep(0.05)
    answer = await asyncio.wait_for(readyz(gateway), 1.5)
    assert json.loads(bytes(answer.body))["checks"]["database"] == "ok"


async def test_a_saturated_pool_is_busy_not_unreachable(pg_url: str) -> None:
    gateway = build_gateway(_settings(pg_url))
    held = [await gateway.engine.raw_connection() for _ in range(2)]  # the whole pool
    try:
        # Without the listener's connection there is nothing to vouch for the database: the check
        # waits for a pooled connection and gives up.
        body = json.loads(bytes((await readyz(gateway)).body))
        assert body["checks"]["database"] == "unreachable"
        await _database_ok_at_once_with_the_listener(gateway)
    finally:
        for connection in held:
            connection.close()
        await gateway.live.stop()
        await gateway.http.aclose()
        await gateway.engine.dispose()


async def test_a_pool_whose_last_connections_are_warm_is_busy_too(pg_url: str) -> None:
    """The connections the login keeps warm for its next statement (db._Warm) are checked out too: a
    probe could not have them either, so they count as at work here (not as idle, as in the gauges)."""
    gateway = build_gateway(_settings(pg_url))
    try:
        await fetchrow_autocommit(gateway.engine, text("SELECT 1"), {})
        assert warm_idle(gateway.engine) == 1
        held = await gateway.engine.raw_connection()  # the pool's other one
        await _database_ok_at_once_with_the_listener(gateway)
        held.close()
    finally:
        release_warm(gateway.engine)
        await gateway.live.stop()
        await gateway.http.aclose()
        await gateway.engine.dispose()
