"""Test databases: a fresh PostgreSQL database per test run and a SQLite file, both migrated by
Alembic; every test starts from empty tables."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.db import Base, create_engine
from leerid_gateway.migrate import upgrade
from leerid_gateway.models import load_all

PG_ADMIN_DSN = os.environ.get("LEERID_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_dsn(name: str) -> str:
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


async def create_pg_database() -> tuple[str, str]:
    """Create an empty database; return (name, SQLAlchemy URL)."""
    name = f"leerid_test_{secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL is required for the tests and is not reachable at {PG_ADMIN_DSN} ({exc}). "
            "Start it (see README) or set LEERID_TEST_PG_DSN."
        ) from exc
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, _pg_dsn(name).replace("postgresql://", "postgresql+asyncpg://", 1)


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'test.db'}"


async def migrate(url: str) -> None:
    await upgrade(url)


async def clear(engine: AsyncEngine) -> None:
    """Empty every table (the schema stays as the migrations made it)."""
    load_all()
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await conn.execute(text(f"DELETE FROM {table}"))


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def make_engine(url: str) -> AsyncEngine:
    return create_engine(url, pool_size=5)
