"""The end-to-end world: a stand-in ACM and the gateway, each a uvicorn server on loopback."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.access import service as access
from leerid_gateway.app import create_app
from leerid_gateway.clients import service as clients
from leerid_gateway.db import create_session_factory, unit_of_work
from leerid_gateway.demo.provider import (
    PARTNER_SCHOOL_CODE,
    RegisteredClient,
    StandInProvider,
    generate_client_keypair,
)
from leerid_gateway.kit.crypto import Hasher
from leerid_gateway.settings import Settings
from tests.support.browser import Browser
from tests.support.faults import Faults
from tests.support.servers import ServerThread, bind_loopback

RETURN_TO = "https://eteacher.example/app/"
CLIENT_ID = "eteacher-gateway"


@dataclass
class World:
    settings: Settings
    provider: StandInProvider
    faults: Faults
    gateway: ServerThread
    db: AsyncEngine
    internal_client: tuple[str, str]
    browser: Browser
    servers: list[ServerThread] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.gateway.url

    async def count(self, model: Any) -> int:
        async with self.db.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())

    async def rows(self, model: Any) -> list[Any]:
        async with self.db.connect() as conn:
            return list((await conn.execute(select(model.__table__))).all())

    def login(self, pupil: str, return_to: str = RETURN_TO) -> Any:
        return self.browser.login(self.url, pupil, return_to)


WorldFactory = Callable[..., Any]


@pytest_asyncio.fixture(loop_scope="session")
async def make_world(db: AsyncEngine, database_url: str, tmp_path: Path) -> AsyncIterator[WorldFactory]:
    """Build a world with the given gateway settings (response mode, client auth, …)."""
    made: list[World] = []

    async def factory(
        *, response_mode: str = "query", client_auth: str = "client_secret_basic", **overrides: Any
    ) -> World:
        provider_sock = bind_loopback()
        issuer = f"http://127.0.0.1:{provider_sock.getsockname()[1]}"
        gateway_sock = bind_loopback()
        public_url = f"http://127.0.0.1:{gateway_sock.getsockname()[1]}"
        client_secret = secrets.token_urlsafe(24)
        registered = RegisteredClient(
            client_id=CLIENT_ID,
            redirect_uris=[f"{public_url}/callback"],
            client_secret=client_secret,
            post_logout_redirect_uris=[RETURN_TO],
        )
        values: dict[str, Any] = {
            "environment": "production",
            "database_url": database_url,
            "public_url": public_url,
            "oidc_issuer": issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_auth": client_auth,
            "oidc_response_mode": response_mode,
            "allowed_return_urls": [RETURN_TO],
            "secret_key": secrets.token_urlsafe(48),
            "oidc_jwks_min_refresh_interval": 0,
        }
        if client_auth == "private_key_jwt":
            public_jwk, private_pem = generate_client_keypair()
            key_file = tmp_path / f"client-key-{len(made)}.pem"
            key_file.write_text(private_pem)
            registered.public_jwk = public_jwk
            registered.client_secret = None
            values["oidc_private_key_file"] = key_file
        else:
            values["oidc_client_secret"] = client_secret
        values.update(overrides)
        settings = Settings(**values)
        provider = StandInProvider(issuer, [registered])
        faults = Faults(provider.app)

        hasher = Hasher(settings.secret_key.get_secret_value(), "client-secret")
        async with unit_of_work(create_session_factory(db)) as session:
            await access.add(session, PARTNER_SCHOOL_CODE, "Sint-Jozefscollege (demo)")
            new = await clients.add(session, hasher, f"eteacher-backend-{secrets.token_hex(3)}")

        provider_server = ServerThread(faults, provider_sock).start()
        gateway_server = ServerThread(create_app(settings), gateway_sock).start()
        world = World(
            settings=settings,
            provider=provider,
            faults=faults,
            gateway=gateway_server,
            db=db,
            internal_client=(new.client_id, new.client_secret),
            browser=Browser(),
            servers=[gateway_server, provider_server],
        )
        made.append(world)
        return world

    yield factory
    for world in made:
        world.browser.close()
        for server in world.servers:
            server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def world(make_world: WorldFactory) -> World:
    return await make_world()  # type: ignore[no-any-return]


@pytest.fixture
def jwks_client_factory() -> Iterator[Callable[[str], Any]]:
    import jwt

    yield lambda url: jwt.PyJWKClient(url, cache_keys=False)
