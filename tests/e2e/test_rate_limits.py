"""Rate limits are counted in the shared database, so every replica enforces the same budget."""

from __future__ import annotations

import httpx

from leerid_gateway.app import create_app
from tests.e2e.conftest import RETURN_TO, World, WorldFactory
from tests.support.servers import ServerThread


def fresh_window() -> None:
    """Counters live in one-minute windows: start a test well inside one, so the window cannot
    roll over (and reset the count) halfway through it."""
    import time

    into = time.time() % 60
    if into > 50:
        time.sleep(60 - into + 0.1)


async def test_login_rate_limit_gives_a_dutch_page_with_retry_after(make_world: WorldFactory) -> None:
    fresh_window()
    world: World = await make_world(rate_limit_login=3)
    for _ in range(3):
        assert world.browser.start_login(world.url, RETURN_TO).status_code == 303
    refused = world.browser.start_login(world.url, RETURN_TO)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("text/html")
    assert "Even geduld" in refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 61


async def test_failed_client_authentication_is_limited_across_replicas(make_world: WorldFactory) -> None:
    fresh_window()
    world: World = await make_world(rate_limit_client_auth_failures=3)
    second = ServerThread(create_app(world.settings)).start()
    world.servers.append(second)
    client_id, secret = world.internal_client

    def attempt(url: str, password: str) -> httpx.Response:
        return httpx.post(f"{url}/introspect", data={"token": "x"}, auth=(client_id, password))

    assert attempt(world.url, "guess-1").status_code == 401
    assert attempt(world.url, "guess-2").status_code == 401
    assert attempt(second.url, "guess-3").status_code == 401
    blocked = attempt(second.url, "guess-4")  # the fourth failure, counted on another replica
    assert blocked.status_code == 429
    assert blocked.headers["content-type"] == "application/problem+json"
    assert "retry-after" in blocked.headers
    # While blocked, even the right secret is refused on that replica: guessing gains nothing.
    assert attempt(second.url, secret).status_code == 429


async def test_a_correct_client_is_never_counted(make_world: WorldFactory) -> None:
    world: World = await make_world(rate_limit_client_auth_failures=1)
    client_id, secret = world.internal_client
    for _ in range(5):
        answer = httpx.post(f"{world.url}/introspect", data={"token": "x"}, auth=(client_id, secret))
        assert answer.status_code == 200


async def test_staff_api_is_rate_limited(make_world: WorldFactory) -> None:
    fresh_window()
    world: World = await make_world(rate_limit_admin=2)
    for _ in range(2):
        assert httpx.get(f"{world.url}/admin/privacy-log").status_code == 401
    limited = httpx.get(f"{world.url}/admin/privacy-log")
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
