"""Helpers for operations tests: gateway replicas as real processes behind one public URL."""

from __future__ import annotations

from leerid_gateway.demo.provider import RegisteredClient
from leerid_gateway.settings import Settings
from tests.e2e.conftest import CLIENT_ID, RETURN_TO, World
from tests.support.servers import bind_loopback


def free_port() -> int:
    sock = bind_loopback()
    try:
        return int(sock.getsockname()[1])
    finally:
        sock.close()


def settings_for_public_url(world: World, public_url: str, **overrides: object) -> Settings:
    """The world's settings with another public URL, whose /callback the stand-in ACM accepts too.

    Behind a load balancer every replica shares the LB's URL; here the first replica plays the LB
    for the browser's login, so its own URL is the public one.
    """
    secret = world.settings.oidc_client_secret
    world.provider.add_client(
        RegisteredClient(
            client_id=CLIENT_ID,
            redirect_uris=[f"{world.url}/callback", f"{public_url}/callback"],
            client_secret=secret.get_secret_value() if secret else None,
            post_logout_redirect_uris=[RETURN_TO],
        )
    )
    return Settings(**{**world.settings.model_dump(), "public_url": public_url, **overrides})
