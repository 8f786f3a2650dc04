"""The hostile world reuses the end-to-end world: a real gateway and a stand-in ACM on loopback."""

from __future__ import annotations

import pytest_asyncio

from tests.e2e.conftest import World, WorldFactory, jwks_client_factory, make_world, world

__all__ = ["fuzz_world", "jwks_client_factory", "make_world", "world"]


@pytest_asyncio.fixture(loop_scope="session")
async def fuzz_world(make_world: WorldFactory) -> World:
    """A world without rate limits (a fuzzer should reach the handlers, not a 429) in which Lotte
    is logged in, so /token and /me answer 200 too."""
    made: World = await make_world(rate_limit_login=0, rate_limit_client_auth_failures=0)
    assert made.login("lotte").status_code == 303
    return made
