"""Several replicas for real: three `leerid-gateway serve` processes on one PostgreSQL share one
pupil's journey, and a logout on one is seen by all within a second (issue 7)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RETURN_TO, World
from tests.ops.support import free_port, settings_for_public_url
from tests.support.browser import Browser
from tests.support.processes import GatewayProcess


def introspect(world: World, url: str, token: str) -> dict[str, Any]:
    answer = httpx.post(f"{url}/introspect", data={"token": token}, auth=world.internal_client, timeout=5)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_one_journey_spread_over_three_replicas(world: World) -> None:
    port = free_port()
    settings = settings_for_public_url(world, f"http://127.0.0.1:{port}", database_pool_size=2)
    first = GatewayProcess(settings, port=port)
    second, third = GatewayProcess(settings), GatewayProcess(settings)
    replicas = [first, second, third]
    browser = Browser()
    try:
        for replica in replicas:
            replica.wait_ready()
        for replica in replicas:  # each replica listens for revocations (LISTEN/NOTIFY)
            deadline = time.monotonic() + 10
            while replica.get("/readyz").json()["info"]["revocation_listener"] != "listening":
                assert time.monotonic() < deadline, "revocation listener did not come up"
                time.sleep(0.05)

        # Login and callback on the first replica (the public URL the provider redirects to).
        landed = browser.login(first.url, "lotte", RETURN_TO)
        assert landed.status_code == 303 and landed.headers["location"] == RETURN_TO
        cookies = browser.http.cookies

        # The session made by the first replica is known to the second: it issues the token.
        answer = httpx.post(f"{second.url}/token", cookies=cookies, timeout=5)
        assert answer.status_code == 200, answer.text
        token = answer.json()["access_token"]
        # The third replica verifies it (same signing keys from the shared database).
        for replica in replicas:
            assert introspect(world, replica.url, token)["active"] is True
        me = httpx.get(f"{third.url}/me", cookies=cookies, timeout=5)
        assert me.status_code == 200

        # Logout on the second replica: every replica says inactive within a second.
        assert httpx.post(f"{second.url}/logout", cookies=cookies, timeout=5).status_code == 204
        started = time.monotonic()
        pending = {replica.url for replica in replicas}
        while pending:
            for url in list(pending):
                if introspect(world, url, token) == {"active": False}:
                    pending.discard(url)
            assert time.monotonic() - started < 1.0, f"still active after 1 s on {sorted(pending)}"
            time.sleep(0.02)
        assert httpx.post(f"{third.url}/token", cookies=cookies, timeout=5).status_code == 401
    finally:
        browser.close()
        for replica in replicas:
            replica.stop()
