"""The console script as an operator uses it: a real process, a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.clients.models import InternalClient
from leerid_gateway.kit.crypto import Hasher

SECRET = "cli-test-secret-0123456789-abcdefghijklmnop"
CLI = str(Path(sys.executable).with_name("leerid-gateway"))


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "LEERID_DATABASE_URL": database_url,
        "LEERID_OIDC_ISSUER": "https://authenticatie-ti.vlaanderen.be/op",
        "LEERID_OIDC_CLIENT_ID": "eteacher",
        "LEERID_OIDC_CLIENT_SECRET": "a-real-looking-client-secret",
        "LEERID_ALLOWED_RETURN_URLS": "https://eteacher.example/",
        "LEERID_SECRET_KEY": SECRET,
        "LEERID_PUBLIC_URL": "https://login.eteacher.example",
    }
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


async def test_schools_add_list_remove(db: AsyncEngine, database_url: str) -> None:
    assert run_cli(database_url, "migrate").returncode == 0
    added = run_cli(database_url, "schools", "add", "054321", "--name", "Testschool")
    assert added.returncode == 0, added.stderr
    listed = run_cli(database_url, "schools", "list")
    assert "054321\tTestschool" in listed.stdout
    assert run_cli(database_url, "schools", "remove", "054321").returncode == 0
    assert "054321" not in run_cli(database_url, "schools", "list").stdout
    missing = run_cli(database_url, "schools", "remove", "054321")
    assert missing.returncode == 1
    assert "not a partner school" in missing.stderr


async def test_clients_add_prints_the_secret_once_and_stores_only_a_hash(
    db: AsyncEngine, database_url: str
) -> None:
    made = run_cli(database_url, "clients", "add", "eteacher-backend", "--json")
    assert made.returncode == 0, made.stderr
    creds = json.loads(made.stdout)
    assert set(creds) == {"client_id", "client_secret"}
    async with db.connect() as conn:
        row = (await conn.execute(select(InternalClient.__table__))).one()
    assert creds["client_secret"].encode() not in row.secret_hash
    assert Hasher(SECRET, "client-secret").matches(creds["client_secret"], row.secret_hash)
    listed = run_cli(database_url, "clients", "list")
    assert creds["client_id"] in listed.stdout
    assert creds["client_secret"] not in listed.stdout
    assert run_cli(database_url, "clients", "add", "eteacher-backend").returncode == 1
    assert run_cli(database_url, "clients", "revoke", "eteacher-backend").returncode == 0
    assert "revoked" in run_cli(database_url, "clients", "list").stdout


@pytest.mark.parametrize("missing", ["LEERID_OIDC_ISSUER", "LEERID_SECRET_KEY"])
def test_missing_setting_stops_with_one_line(missing: str, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "LEERID_OIDC_ISSUER": "https://authenticatie-ti.vlaanderen.be/op",
        "LEERID_OIDC_CLIENT_ID": "eteacher",
        "LEERID_OIDC_CLIENT_SECRET": "a-real-looking-client-secret",
        "LEERID_ALLOWED_RETURN_URLS": "https://eteacher.example/",
        "LEERID_SECRET_KEY": SECRET,
        "LEERID_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
    }
    del env[missing]
    result = subprocess.run([CLI, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("leerid-gateway: invalid configuration")
    assert missing in lines[0]


async def test_keys_rotate_publishes_a_next_key_and_list_shows_the_states(
    db: AsyncEngine, database_url: str
) -> None:
    from leerid_gateway.kit.crypto import Sealer
    from leerid_gateway.tokens import keys as key_store

    async with db.begin() as conn:
        from sqlalchemy.ext.asyncio import AsyncSession

        session = AsyncSession(bind=conn)
        await key_store.ensure_active(session, Sealer(SECRET, "signing-keys"), "ES256")
        await session.flush()
    first = run_cli(database_url, "keys", "list")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("\tactive\t") == 1

    rotated = run_cli(database_url, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "is published now and signs from" in rotated.stdout
    states = [line.split("\t")[2] for line in run_cli(database_url, "keys", "list").stdout.splitlines()]
    assert sorted(states) == ["active", "next"]
    again = run_cli(database_url, "keys", "rotate")
    assert again.returncode == 1
    assert "already waiting" in again.stderr
