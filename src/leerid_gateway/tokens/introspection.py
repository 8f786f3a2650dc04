"""RFC 7662 token introspection: exact about expiry and revocation, cheap on the hot path.

Per call, for a token seen before: one dict lookup for its verified claims (a signature is checked
once per process), one for its session's state and one for its jti — all served from memory while
the revocation listener is up (tokens/live.py), from the database otherwise. ``exp``, the session's
absolute and idle expiry are compared with the clock on every call.
"""

from __future__ import annotations

import time
from typing import Any

from leerid_gateway.kit.lru import LRU
from leerid_gateway.tokens.keys import LoadedKeys
from leerid_gateway.tokens.live import LiveState
from leerid_gateway.tokens.service import TokenPolicy, verify

INACTIVE: dict[str, Any] = {"active": False}


class Introspector:
    def __init__(self, live: LiveState, policy: TokenPolicy, *, idle_ttl: float, cache_size: int) -> None:
        self._live = live
        self._policy = policy
        self._idle_ttl = idle_ttl
        self._verified: LRU[str, dict[str, Any]] = LRU(cache_size)

    async def claims_if_active(self, keys: LoadedKeys, token: str) -> dict[str, Any] | None:
        now = time.time()
        claims = self._verified.get(token)
        if claims is None:
            claims = verify(keys, self._policy, token, now=now)
            if claims is None:
                return None
            self._verified.put(token, claims)
        elif claims["exp"] <= now or claims.get("kid") not in keys.public:
            # Expired since it was cached, or its key is no longer published.
            self._verified.pop(token)
            return None
        session, jti_revoked = await self._live.token_state(claims["sid"], claims["jti"])
        if (
            session is None
            or jti_revoked
            or session.revoked
            or session.sub != claims["sub"]
            or session.absolute_expires_at <= now
            # Issuing the token was activity too: the session was alive at iat (RFC 7662 §2.2).
            or max(session.last_seen_at, claims["iat"]) + self._idle_ttl <= now
        ):
            return None
        return claims

    async def introspect(self, keys: LoadedKeys, token: str) -> dict[str, Any]:
        """RFC 7662 §2.2: the standard members for an active token; ``{"active": false}`` only otherwise."""
        claims = await self.claims_if_active(keys, token)
        if claims is None:
            return INACTIVE
        return {
            "active": True,
            "client_id": claims["client_id"],
            "token_type": "Bearer",
            "exp": claims["exp"],
            "iat": claims["iat"],
            "sub": claims["sub"],
            "aud": claims["aud"],
            "iss": claims["iss"],
            "jti": claims["jti"],
            "sid": claims["sid"],
        }
