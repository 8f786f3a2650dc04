"""The process-wide resources of one running gateway, made in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from leerid_gateway.kit.crypto import Hasher
from leerid_gateway.kit.ratelimit import RateLimiter
from leerid_gateway.oidc.provider import Provider
from leerid_gateway.oidc.resilience import Upstream
from leerid_gateway.oidc.service import RelyingParty
from leerid_gateway.settings import Settings
from leerid_gateway.tokens.introspection import Introspector
from leerid_gateway.tokens.keyring import KeyRing
from leerid_gateway.tokens.live import LiveState
from leerid_gateway.tokens.service import TokenPolicy


@dataclass
class Gateway:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    upstream: Upstream
    provider: Provider
    relying_party: RelyingParty
    keyring: KeyRing
    token_policy: TokenPolicy
    client_hasher: Hasher
    live: LiveState
    limiter: RateLimiter
    introspector: Introspector
