"""Shared fixtures: real databases (PostgreSQL and SQLite, migrated by Alembic), real servers."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import database

BACKENDS = ("postgres", "sqlite")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_url() -> AsyncIterator[str]:
    name, url = await database.create_pg_database()
    try:
        await database.migrate(url)
        yield url
    finally:
        await database.drop_pg_database(name)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    url = database.sqlite_url(tmp_path_factory.mktemp("sqlite"))
    await database.migrate(url)
    yield url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engines(pg_url: str, sqlite_url: str) -> AsyncIterator[dict[str, AsyncEngine]]:
    made = {"postgres": database.make_engine(pg_url), "sqlite": database.make_engine(sqlite_url)}
    yield made
    for engine in made.values():
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, pg_url: str, sqlite_url: str) -> str:
    return pg_url if backend == "postgres" else sqlite_url


@pytest_asyncio.fixture(loop_scope="session")
async def db(backend: str, engines: dict[str, AsyncEngine]) -> AsyncIterator[AsyncEngine]:
    """The engine of this test's backend, with every table emptied first."""
    engine = engines[backend]
    await database.clear(engine)
    yield engine


@pytest_asyncio.fixture(loop_scope="session")
async def pg(engines: dict[str, AsyncEngine]) -> AsyncIterator[AsyncEngine]:
    """PostgreSQL only (concurrency tests), emptied first."""
    await database.clear(engines["postgres"])
    yield engines["postgres"]


@pytest.fixture
def secret_key() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
