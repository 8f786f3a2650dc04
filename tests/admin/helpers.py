"""Staff credentials and an /admin client for the end-to-end world."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from leerid_gateway.admin import service as admin
from leerid_gateway.db import create_session_factory, unit_of_work
from leerid_gateway.kit.crypto import Hasher
from leerid_gateway.privacy.models import PrivacyLogEntry
from tests.e2e.conftest import World

PURPOSE = "vraag van de school over de toegang van deze leerling"


async def staff_key(world: World, name: str, role: str) -> str:
    hasher = Hasher(world.settings.secret_key.get_secret_value(), admin.HASH_PURPOSE)
    async with unit_of_work(create_session_factory(world.db)) as db:
        return (await admin.add_staff(db, hasher, name, role)).api_key


async def staff_client(world: World, name: str, role: str) -> httpx.Client:
    key = await staff_key(world, name, role)
    return httpx.Client(base_url=world.url, headers={"Authorization": f"Bearer {key}"}, timeout=15)


async def log_entries(world: World, action: str | None = None) -> list[PrivacyLogEntry]:
    async with create_session_factory(world.db)() as db:
        query = select(PrivacyLogEntry).order_by(PrivacyLogEntry.id)
        if action is not None:
            query = query.where(PrivacyLogEntry.action == action)
        return list(await db.scalars(query))
