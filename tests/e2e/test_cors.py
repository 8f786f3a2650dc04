"""CORS over the real server: the eTeacher frontend (an origin of LEERID_ALLOWED_RETURN_URLS by
default) may fetch /token with its cookie; another origin gets nothing to read (kit/edge.py)."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import World

ETEACHER = "https://eteacher.example"


async def test_the_eteacher_frontend_may_ask_for_a_token_with_its_cookie(world: World) -> None:
    preflight = httpx.options(
        f"{world.url}/token",
        headers={"Origin": ETEACHER, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ETEACHER
    assert preflight.headers["access-control-allow-credentials"] == "true"
    anonymous = httpx.post(f"{world.url}/token", headers={"Origin": ETEACHER})
    assert anonymous.status_code == 401
    assert anonymous.headers["access-control-allow-origin"] == ETEACHER
    other = httpx.post(f"{world.url}/token", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers and other.headers["vary"] == "Origin"
    world.login("lotte")
    answer = world.browser.http.post(f"{world.url}/token", headers={"Origin": ETEACHER})
    assert answer.status_code == 200 and answer.json()["token_type"].lower() == "bearer"
    assert answer.headers["access-control-allow-origin"] == ETEACHER
    assert answer.headers["access-control-allow-credentials"] == "true"
    plain = httpx.get(f"{world.url}/healthz")
    assert plain.headers["vary"] == "Origin" and "access-control-allow-origin" not in plain.headers
