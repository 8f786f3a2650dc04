"""Alembic environment: async engines for PostgreSQL (asyncpg) and SQLite (aiosqlite).

Two ways in: `leerid-gateway migrate` hands us an open connection (config.attributes["connection"]),
or plain `alembic upgrade head` makes its own engine from LEERID_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from leerid_gateway.db import Base, create_engine
from leerid_gateway.models import load_all

load_all()
target_metadata = Base.metadata
config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite can only ALTER by copying
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


connection = config.attributes.get("connection")
if context.is_offline_mode():
    context.configure(
        url=os.environ.get("LEERID_DATABASE_URL", "sqlite:///"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async(os.environ.get("LEERID_DATABASE_URL", "sqlite+aiosqlite:///./leerid-gateway.db")))
