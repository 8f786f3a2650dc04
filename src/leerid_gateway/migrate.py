"""Apply the Alembic migrations programmatically (the only way the schema is made)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from leerid_gateway.db import create_engine


def migrations_dir() -> Path:
    """LEERID_MIGRATIONS_DIR, else the repository's migrations/ next to src/ (editable installs)."""
    configured = os.environ.get("LEERID_MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config() -> Config:
    directory = migrations_dir()
    if not (directory / "env.py").is_file():
        raise RuntimeError(f"no Alembic migrations at {directory}; set LEERID_MIGRATIONS_DIR")
    config = Config()
    config.set_main_option("script_location", str(directory))
    return config


async def upgrade(database_url: str, revision: str = "head") -> None:
    config = alembic_config()
    engine = create_engine(database_url, pool_size=2)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
    finally:
        await engine.dispose()
