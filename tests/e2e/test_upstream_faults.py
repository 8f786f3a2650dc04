"""ACM or the datastore slow, down or misbehaving: a Dutch page with a way to try again, nothing
half-written, retries only where safe, and a breaker so a dead provider does not tie up workers."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import World, WorldFactory
from tests.e2e.test_login_failures import assert_dutch_page, assert_nothing_stored, hop_to_callback
from tests.support.faults import fixed, sequence, slow, truncated


def try_again_page(answer: httpx.Response) -> None:
    assert_dutch_page(answer, 502, "Aanmelden lukt even niet")
    assert "Opnieuw proberen" in answer.text
    assert "/login?return_to=" in answer.text


async def test_a_datastore_5xx_is_retried_and_the_login_succeeds(world: World) -> None:
    world.faults.overrides["/userinfo"] = sequence(fixed(503, b"busy", "text/plain"), None)
    answer = world.browser.follow(hop_to_callback(world))
    assert answer.status_code == 303
    assert world.faults.calls["/userinfo"] == 2


async def test_429_with_retry_after_is_honoured(world: World) -> None:
    async def too_many(scope, receive, send, app):  # type: ignore[no-untyped-def]
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [(b"retry-after", b"1"), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    world.faults.overrides["/userinfo"] = sequence(too_many, None)
    hop = hop_to_callback(world)
    started = time.monotonic()
    answer = world.browser.follow(hop)
    assert answer.status_code == 303
    assert time.monotonic() - started >= 1.0


async def test_the_single_use_code_exchange_is_never_retried(world: World) -> None:
    world.faults.overrides["/token"] = fixed(503, b"busy", "text/plain")
    try_again_page(world.browser.follow(hop_to_callback(world)))
    assert world.faults.calls["/token"] == 1
    await assert_nothing_stored(world)


@pytest.mark.parametrize(
    "fault",
    [
        fixed(500, b"", "text/plain"),
        fixed(200, b'{"truncated": ', "application/json"),
        truncated(5000, b'{"ov_account_uuid": "a'),
        fixed(200, b'{"a": "' + b"x" * (600 * 1024) + b'"}', "application/json"),
        fixed(
            200, b'{"ov_account_uuid": ["a", "b"], "given_name": "A", "family_name": "B"}', "application/json"
        ),
    ],
    ids=["500", "invalid-json", "truncated", "huge", "wrong-shape"],
)
async def test_a_misbehaving_datastore_stores_nothing(world: World, fault: object) -> None:
    world.faults.overrides["/userinfo"] = fault  # type: ignore[assignment]
    try_again_page(world.browser.follow(hop_to_callback(world)))
    await assert_nothing_stored(world)


async def test_a_hanging_datastore_is_cut_off_in_bounded_time(make_world: WorldFactory) -> None:
    world: World = await make_world(oidc_http_timeout=0.5, upstream_retries=0)
    world.faults.overrides["/userinfo"] = slow(5)
    hop = hop_to_callback(world)
    started = time.monotonic()
    try_again_page(world.browser.follow(hop))
    assert time.monotonic() - started < 2.0
    await assert_nothing_stored(world)


async def test_a_dead_provider_opens_the_breaker_and_readyz_reports_it(make_world: WorldFactory) -> None:
    world: World = await make_world(
        upstream_retries=0,
        upstream_breaker_threshold=2,
        upstream_breaker_cooldown=30,
        upstream_unready_after=0.3,
    )
    assert httpx.get(f"{world.url}/readyz").status_code == 200
    world.faults.overrides["/token"] = fixed(502, b"bad gateway", "text/plain")
    for _ in range(2):
        try_again_page(world.browser.follow(hop_to_callback(world)))
    calls = world.faults.calls["/token"]
    # Open: the next callback fails at once without calling the provider.
    try_again_page(world.browser.follow(hop_to_callback(world)))
    assert world.faults.calls["/token"] == calls
    time.sleep(0.35)
    ready = httpx.get(f"{world.url}/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["provider"] == "unreachable"
    await assert_nothing_stored(world)


async def test_provider_down_during_callback_gives_the_retry_page(world: World) -> None:
    hop = hop_to_callback(world)
    world.servers[1].stop()  # the stand-in provider goes away
    try_again_page(world.browser.follow(hop))
    await assert_nothing_stored(world)


@pytest.mark.parametrize(
    "fault",
    [
        fixed(500, b"down", "text/plain"),
        fixed(200, b"<html>not a key set</html>", "text/html"),
        fixed(200, b'{"keys": "not-a-list"}', "application/json"),
        slow(5),
    ],
    ids=["500", "html", "wrong-shape", "hanging"],
)
async def test_a_broken_jwks_endpoint_stores_nothing(make_world: WorldFactory, fault: object) -> None:
    """The provider's keys are fetched at the first id_token; a broken JWKS is a retry page."""
    world: World = await make_world(oidc_http_timeout=0.5)
    world.faults.overrides["/jwks"] = fault  # type: ignore[assignment]
    try_again_page(world.browser.follow(hop_to_callback(world)))
    await assert_nothing_stored(world)
    # Once the keys can be had again, the next login succeeds (nothing bad was cached).
    world.faults.clear()
    assert world.login("lotte").status_code == 303


async def test_a_provider_unreachable_at_start_up_gives_not_ready_and_a_retry_page(world: World) -> None:
    from leerid_gateway.app import create_app
    from leerid_gateway.settings import Settings
    from tests.support.servers import ServerThread, bind_loopback

    dead = bind_loopback()  # bound, never listening: connections are refused
    # A new Settings, not model_copy: the derived values are cached properties.
    settings = Settings(
        **{**world.settings.model_dump(), "oidc_issuer": f"http://127.0.0.1:{dead.getsockname()[1]}"}
    )
    gateway = ServerThread(create_app(settings)).start()
    world.servers.append(gateway)
    try:
        ready = httpx.get(f"{gateway.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["provider"] == "unreachable"
        answer = world.browser.start_login(gateway.url, "https://eteacher.example/app/")
        try_again_page(answer)
    finally:
        dead.close()
