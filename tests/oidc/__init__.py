"""Helpers for the OIDC tests: a fake ACM (discovery + JWKS served by respx) and a settable clock."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import respx
from joserfc import jwt
from joserfc.jwk import Key, RSAKey

ISSUER = "https://acm.example/op"
CLIENT_ID = "eteacher"
DISCOVERY_URL = ISSUER + "/.well-known/openid-configuration"
JWKS_URL = ISSUER + "/jwks"


def discovery_document(issuer: str = ISSUER, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "jwks_uri": JWKS_URL,
        "userinfo_endpoint": issuer + "/userinfo",
        "response_modes_supported": ["query", "form_post"],
        "authorization_response_iss_parameter_supported": True,
    }
    doc.update(overrides)
    return doc


def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)


@dataclass
class FakeAcm:
    """ACM's discovery and JWKS on respx routes; ``published`` can be changed to rotate keys."""

    router: respx.MockRouter
    published: list[Key] = field(default_factory=list)
    discovery: dict[str, Any] = field(default_factory=discovery_document)

    def __post_init__(self) -> None:
        self.discovery_route = self.router.get(DISCOVERY_URL).mock(side_effect=self._discovery)
        self.jwks_route = self.router.get(JWKS_URL).mock(side_effect=self._jwks)

    def _discovery(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=self.discovery)

    def _jwks(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in self.published]})

    def sign(self, claims: dict[str, Any], key: Key, **header: Any) -> str:
        header.setdefault("alg", "RS256")
        if "kid" not in header:
            header["kid"] = key.kid
        elif header["kid"] is None:
            del header["kid"]
        return jwt.encode(header, claims, key, algorithms=[header["alg"]])


def id_token_claims(
    nonce: str = "n-0S6_WzA2Mj", now: float | None = None, **overrides: Any
) -> dict[str, Any]:
    moment = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "acm-subject-1",
        "aud": CLIENT_ID,
        "exp": moment + 300,
        "iat": moment,
        "nonce": nonce,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not _DROP}


_DROP = object()
DROP: Any = _DROP


class Clock:
    """Stands in for the ``time`` module inside one module under test (monotonic moves by hand)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()

    def advance(self, seconds: float) -> None:
        self.now += seconds
