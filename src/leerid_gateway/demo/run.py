"""`leerid-gateway demo`: the real gateway on SQLite + a stand-in ACM + a sample eTeacher, on loopback.

Nothing is bypassed: the gateway is configured only through its settings, runs the same code as in
production, talks HTTP to the stand-in provider, and the sample eTeacher talks HTTP to the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from leerid_gateway.access import service as access
from leerid_gateway.app import create_app
from leerid_gateway.clients import service as clients
from leerid_gateway.db import create_engine, create_session_factory, unit_of_work
from leerid_gateway.demo.eteacher import create_eteacher_app
from leerid_gateway.demo.provider import (
    PARTNER_SCHOOL_CODE,
    PARTNER_SCHOOL_NAME,
    RegisteredClient,
    StandInProvider,
)
from leerid_gateway.kit.crypto import Hasher
from leerid_gateway.migrate import upgrade
from leerid_gateway.settings import Settings


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the main (gateway) server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _secret(path: Path, nbytes: int = 32) -> str:
    """A random secret kept in the demo's data folder, so a restart keeps sessions and keys valid."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(nbytes))
        path.chmod(0o600)
    return path.read_text().strip()


def demo_settings(host: str, port: int, data_dir: Path) -> Settings:
    return Settings(
        environment="development",
        database_url=f"sqlite+aiosqlite:///{(data_dir / 'gateway.db').resolve()}",
        public_url=f"http://{host}:{port}",
        oidc_issuer=f"http://{host}:{port + 1}",
        oidc_client_id="eteacher-gateway-demo",
        oidc_client_secret=_secret(data_dir / "acm-client-secret"),
        oidc_post_logout_redirect_url=f"http://{host}:{port + 2}/",
        allowed_return_urls=[f"http://{host}:{port + 2}/"],
        secret_key=_secret(data_dir / "secret-key", 48),
    )


async def _prepare(settings: Settings, data_dir: Path) -> tuple[str, str]:
    """Migrate, make the demo partner school and the sample eTeacher's introspection client."""
    await upgrade(settings.database_url)
    creds_file = data_dir / "eteacher-client.json"
    engine = create_engine(settings.database_url)
    try:
        async with unit_of_work(create_session_factory(engine)) as db:
            await access.add(db, PARTNER_SCHOOL_CODE, PARTNER_SCHOOL_NAME)
            known = {c.client_id for c in await clients.list_all(db) if c.revoked_at is None}
            creds = json.loads(creds_file.read_text()) if creds_file.exists() else None
            if creds is None or creds["client_id"] not in known:
                hasher = Hasher(settings.secret_key.get_secret_value(), "client-secret")
                await clients.revoke(db, "eteacher-demo")
                new = await clients.add(db, hasher, f"eteacher-demo-{secrets.token_hex(3)}")
                creds = {"client_id": new.client_id, "client_secret": new.client_secret}
                creds_file.write_text(json.dumps(creds))
                creds_file.chmod(0o600)
    finally:
        await engine.dispose()
    return creds["client_id"], creds["client_secret"]


async def serve_demo(host: str, port: int, data_dir: Path) -> None:
    settings = demo_settings(host, port, data_dir)
    client_id, client_secret = await _prepare(settings, data_dir)
    eteacher_url = f"http://{host}:{port + 2}"
    provider = StandInProvider(
        settings.provider_issuer,
        [
            RegisteredClient(
                client_id=settings.oidc_client_id,
                redirect_uris=[settings.redirect_uri],
                client_secret=settings.oidc_client_secret.get_secret_value()
                if settings.oidc_client_secret
                else None,
                post_logout_redirect_uris=[eteacher_url + "/"],
            )
        ],
    )
    eteacher = create_eteacher_app(
        gateway_url=settings.issuer, self_url=eteacher_url, client_id=client_id, client_secret=client_secret
    )

    def config(app: Any, p: int) -> uvicorn.Config:
        return uvicorn.Config(
            app, host=host, port=p, log_level="warning", access_log=False, lifespan="on", log_config=None
        )

    provider_server = _QuietServer(config(provider.app, port + 1))
    eteacher_server = _QuietServer(config(eteacher, port + 2))
    gateway_server = uvicorn.Server(config(create_app(settings), port))
    side = [asyncio.create_task(provider_server.serve()), asyncio.create_task(eteacher_server.serve())]
    await asyncio.sleep(0.2)
    print(
        "\nleerid-gateway demo is running (Ctrl+C stops it)\n\n"
        f"  Open eTeacher:            {eteacher_url}/\n"
        f"  Gateway:                  {settings.issuer}  (API docs: {settings.issuer}/docs)\n"
        f"  Stand-in ACM provider:    {settings.provider_issuer}\n"
        f"  Data (SQLite, secrets):   {data_dir}\n",
        flush=True,
    )
    try:
        await gateway_server.serve()
    finally:
        provider_server.should_exit = eteacher_server.should_exit = True
        await asyncio.gather(*side, return_exceptions=True)


def run_demo(*, host: str, port: int, data_dir: str) -> int:
    folder = Path(data_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve_demo(host, port, folder))
    return 0
