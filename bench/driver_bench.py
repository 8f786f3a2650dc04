"""CPU per single autocommit statement: through a SQLAlchemy Connection vs ``db.fetchrow_autocommit``.

    .venv/bin/python -m bench.driver_bench            # from the repository root, ~20 s

The statement is the login's own (oidc/store.py: count the rate limit and open the login row, one
CTE). Both ways run it against a migrated database of their own on 127.0.0.1:5432 in interleaved
rounds (this machine's speed drifts); the medians are reported.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable

import uvloop
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support import database

from leerid_gateway.db import create_session_factory, fetchrow_autocommit
from leerid_gateway.kit.ratelimit import RateLimiter
from leerid_gateway.oidc import store

CALLS = 400
ROUNDS = 5


def _row() -> dict[str, object]:
    now = dt.datetime.now(dt.UTC)
    return {
        "state_hash": secrets.token_bytes(32),
        "browser_hash": secrets.token_bytes(32),
        "nonce": "n",
        "code_verifier": "v",
        "return_to": "https://eteacher.example/app/",
        "created_at": now,
        "expires_at": now + dt.timedelta(minutes=10),
    }


async def _through_sqlalchemy(engine: AsyncEngine, params: dict[str, object]) -> None:
    """What oidc/store.py did before: a Connection in autocommit mode."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        (await conn.execute(store._OPEN_COUNTED, params)).one()


async def _cpu_per_call(call: Callable[[], Awaitable[None]]) -> float:
    start = time.process_time()
    for _ in range(CALLS):
        await call()
    return (time.process_time() - start) / CALLS


async def main() -> None:
    name, url = await database.create_pg_database()
    try:
        await database.migrate(url)
        engine = database.make_engine(url)
        counted = RateLimiter(create_session_factory(engine)).prepare("login", "127.0.0.1", 10**9)
        assert counted is not None
        ways: dict[str, Callable[[], Awaitable[None]]] = {
            "SQLAlchemy Connection": lambda: _through_sqlalchemy(engine, _row() | counted.params()),
            "fetchrow_autocommit": lambda: _discard(
                fetchrow_autocommit(engine, store._OPEN_COUNTED, _row() | counted.params())
            ),
        }
        seen: dict[str, list[float]] = {way: [] for way in ways}
        for call in ways.values():
            await _cpu_per_call(call)  # warm: connections, statement caches
        for _ in range(ROUNDS):
            for way, call in ways.items():
                seen[way].append(await _cpu_per_call(call))
        await engine.dispose()
    finally:
        await database.drop_pg_database(name)
    results = {way: 1e6 * statistics.median(values) for way, values in seen.items()}
    for way, values in seen.items():
        rounds = [round(1e6 * v) for v in values]
        print(f"{way:>22}: {results[way]:5.0f} µs CPU per statement (rounds: {rounds})")
    print(json.dumps({"us_cpu_per_statement": results, "calls_per_round": CALLS, "rounds": ROUNDS}))


async def _discard(call: Awaitable[object]) -> None:
    await call


if __name__ == "__main__":
    uvloop.run(main())
