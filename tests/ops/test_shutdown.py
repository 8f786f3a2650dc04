"""Graceful shutdown of a real `leerid-gateway serve`: on SIGTERM /readyz turns 503 first, requests in
flight finish, then the process exits (issue 7)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from leerid_gateway.kit import lifecycle
from leerid_gateway.serving import DrainingServer, uvicorn_config
from tests.e2e.conftest import RETURN_TO, World
from tests.ops.support import free_port, settings_for_public_url
from tests.support import offline_settings
from tests.support.browser import Browser
from tests.support.processes import GatewayProcess

SLOW = 2.5  # seconds ACM's token endpoint takes: longer than the drain period


def slow(seconds: float) -> Any:
    async def handler(scope: Any, receive: Any, send: Any, app: Any) -> None:
        await asyncio.sleep(seconds)
        await app(scope, receive, send)

    return handler


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sigterm_drains_then_finishes_the_request_in_flight(world: World) -> None:
    port = free_port()
    settings = settings_for_public_url(world, f"http://127.0.0.1:{port}")
    replica = GatewayProcess(
        settings, port=port, LEERID_SHUTDOWN_DRAIN_SECONDS="1.5", LEERID_SHUTDOWN_TIMEOUT="10"
    ).wait_ready()
    browser = Browser()
    try:
        start = browser.start_login(replica.url, RETURN_TO)
        assert start.status_code == 303
        hop = browser.choose_pupil(start.headers["location"], "lotte")
        world.faults.overrides["/token"] = slow(SLOW)

        result: dict[str, Any] = {}

        def callback() -> None:
            try:
                result["response"] = browser.follow(hop)
            except httpx.HTTPError as exc:  # pragma: no cover - the assertion below reports it
                result["error"] = repr(exc)

        in_flight = threading.Thread(target=callback)
        in_flight.start()
        deadline = time.monotonic() + 5
        while world.faults.calls.get("/token", 0) == 0:  # the callback is now waiting for ACM
            assert time.monotonic() < deadline, "the callback never reached the token endpoint"
            time.sleep(0.02)

        replica.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        ready = replica.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        assert replica.get("/healthz").status_code == 200  # alive: not a reason to restart it

        in_flight.join(timeout=15)
        assert "error" not in result, result.get("error")
        answer = result["response"]
        assert answer.status_code == 303 and answer.headers["location"] == RETURN_TO
        assert replica.process.wait(timeout=15) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.ConnectError):
            replica.get("/healthz")
    finally:
        browser.close()
        replica.stop()


@pytest.fixture
def draining_flag() -> Iterator[threading.Event]:
    lifecycle.DRAINING.clear()
    yield lifecycle.DRAINING
    lifecycle.DRAINING.clear()


def test_second_sigterm_or_no_drain_period_stops_at_once(draining_flag: threading.Event) -> None:
    """The drain is for the first SIGTERM only; a second one, or a drain of 0, stops directly."""
    settings = offline_settings(trusted_proxies="10.1.2.3,10.0.0.0/8")
    config = uvicorn_config(settings, host="127.0.0.1", port=free_port(), proxy_headers=True)
    assert config.forwarded_allow_ips == "10.1.2.3,10.0.0.0/8"
    assert config.timeout_graceful_shutdown == settings.shutdown_timeout

    server = DrainingServer(config, drain_seconds=0)
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit and not draining_flag.is_set()

    server = DrainingServer(config, drain_seconds=30)
    server.handle_exit(signal.SIGTERM, None)
    assert draining_flag.is_set() and not server.should_exit
    server.handle_exit(signal.SIGTERM, None)  # an impatient orchestrator: stop now
    assert server.should_exit
