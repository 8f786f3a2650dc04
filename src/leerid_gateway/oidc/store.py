"""The login rows (state, nonce, PKCE verifier of one authorization request): opened at /login,
redeemed once at /callback, each together with that request's rate-limit count.

On PostgreSQL each is **one statement in autocommit mode**, run straight on the driver
(``db.fetchrow_autocommit``): the counter upsert is a CTE of the statement that opens or redeems
the row, and the row is only written or consumed when the count is within the limit. A single
statement is atomic, so no BEGIN/COMMIT round trips are needed (a login was 10 round trips here
before; now 2 — docs/performance.md). SQLite (the embedded default, one
writer, in-process) runs the same two steps in one short transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TextClause, bindparam, delete, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import fetchrow_autocommit
from leerid_gateway.kit.ratelimit import COUNTED_CTE, Count, RateLimiter, housekeeping, housekeeping_due
from leerid_gateway.oidc.models import LoginTransaction

_COLUMNS = "state_hash, browser_hash, nonce, code_verifier, return_to, created_at, expires_at"
_VALUES = ":state_hash, :browser_hash, :nonce, :code_verifier, :return_to, :created_at, :expires_at"
_RETURNED = "nonce, code_verifier, return_to, expires_at"

# S608: the f-strings join this module's own constants; every value is a bound parameter.
_OPEN_COUNTED = text(
    f"WITH {COUNTED_CTE}, opened AS (INSERT INTO login_transactions ({_COLUMNS}) "  # noqa: S608
    f"SELECT {_VALUES} FROM counted WHERE counted.count <= :rate_limit) "
    "SELECT count FROM counted"
)
_REDEEM_COUNTED = text(
    f"WITH {COUNTED_CTE}, redeemed AS (DELETE FROM login_transactions "  # noqa: S608
    "WHERE state_hash = :state_hash AND browser_hash = :browser_hash "
    f"AND (SELECT count FROM counted) <= :rate_limit RETURNING {_RETURNED}) "
    f"SELECT counted.count, {_RETURNED} FROM counted LEFT JOIN redeemed ON true"
)
_OPEN = insert(LoginTransaction)
_REDEEM = (
    delete(LoginTransaction)
    .where(
        LoginTransaction.state_hash == bindparam("state_hash"),
        LoginTransaction.browser_hash == bindparam("browser_hash"),
    )
    .returning(
        LoginTransaction.nonce,
        LoginTransaction.code_verifier,
        LoginTransaction.return_to,
        LoginTransaction.expires_at,
    )
)


@dataclass(frozen=True, slots=True)
class Redeemed:
    nonce: str
    code_verifier: str
    return_to: str
    expires_at: dt.datetime


async def open_login(
    engine: AsyncEngine,
    limiter: RateLimiter,
    client: str,
    limit: int,
    row: dict[str, object],
) -> None:
    """Count this /login and store its login row (only when within the limit)."""
    counted = limiter.prepare("login", client, limit)
    if engine.dialect.name == "postgresql" and counted is not None:
        await _counted(engine, limiter, counted, _OPEN_COUNTED, row)
        return
    async with engine.begin() as conn:
        if counted is not None:
            await limiter.add(conn, counted)
        await conn.execute(_OPEN, row)


async def redeem_login(
    engine: AsyncEngine,
    limiter: RateLimiter,
    client: str,
    limit: int,
    *,
    state_hash: bytes,
    browser_hash: bytes,
) -> Redeemed | None:
    """Count this /callback and consume its login row: once, and only from the browser that
    started it (RFC 6819 §4.4.1.8, RFC 9700 §2.1). None when there is no such row."""
    counted = limiter.prepare("callback", client, limit)
    keys: dict[str, object] = {"state_hash": state_hash, "browser_hash": browser_hash}
    if engine.dialect.name == "postgresql" and counted is not None:
        found = await _counted(engine, limiter, counted, _REDEEM_COUNTED, keys)
        return None if found[1] is None else Redeemed(*found[1:])
    async with engine.begin() as conn:
        if counted is not None:
            await limiter.add(conn, counted)
        row = (await conn.execute(_REDEEM, keys)).first()
    return None if row is None else Redeemed(*row)


async def _counted(
    engine: AsyncEngine,
    limiter: RateLimiter,
    counted: Count,
    statement: TextClause,
    params: dict[str, object],
) -> tuple[Any, ...]:
    """Run one statement whose first column is the rate counter (``COUNTED_CTE``), in autocommit
    mode straight on the driver (``db.fetchrow_autocommit``): atomic on its own, no BEGIN/COMMIT.
    Raises RateLimited over the limit."""
    found = await fetchrow_autocommit(engine, statement, params | counted.params())
    assert found is not None  # the statement selects from `counted`, which always has its one row
    if housekeeping_due():
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await housekeeping(conn, counted)
    limiter.judge(counted, int(found[0]))
    return found
