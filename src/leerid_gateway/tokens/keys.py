"""Signing keys: made once for all replicas, private parts sealed with the server secret.

``docs/architecture.md`` "Tokens": issue 5 adds the full rotation lifecycle (next → active →
retired); the states and columns are already here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.db import utcnow
from leerid_gateway.kit.crypto import Sealer
from leerid_gateway.tokens.models import SigningKey

_KEYGEN_LOCK = 0x1EE51D_01
# Public-facing cache lifetime of the JWKS (Cache-Control max-age); rotation must wait longer.
JWKS_MAX_AGE = 300


def generate(alg: str) -> Key:
    key: Key
    if alg == "ES256":
        key = ECKey.generate_key("P-256", auto_kid=True)
    elif alg == "RS256":
        key = RSAKey.generate_key(2048, auto_kid=True)
    elif alg == "EdDSA":
        key = OKPKey.generate_key("Ed25519", auto_kid=True)
    else:
        raise ValueError(f"unsupported signing alg {alg}")
    return key


@dataclass(frozen=True, slots=True)
class LoadedKeys:
    active_kid: str
    active_alg: str
    private: Key
    public: dict[str, Key]  # kid → public key, for verification (active, next, retired)
    jwks: dict[str, Any]  # the JWKS document
    loaded_at: float


async def ensure_active(db: AsyncSession, sealer: Sealer, alg: str) -> None:
    """Make the first signing key if there is none (one replica does it; the others wait)."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _KEYGEN_LOCK})
    existing = await db.scalar(select(SigningKey.kid).where(SigningKey.state == "active"))
    if existing is not None:
        return
    key = generate(alg)
    now = utcnow()
    db.add(
        SigningKey(
            kid=key.kid,
            alg=alg,
            state="active",
            public_jwk={**key.as_dict(private=False), "alg": alg, "use": "sig"},
            private_jwk_encrypted=sealer.seal(json.dumps(key.as_dict(private=True)).encode()),
            created_at=now,
            activated_at=now,
        )
    )
    await db.flush()


async def load(db: AsyncSession, sealer: Sealer) -> LoadedKeys:
    rows = list(
        await db.scalars(select(SigningKey).where(SigningKey.state.in_(("next", "active", "retired"))))
    )
    active = [r for r in rows if r.state == "active"]
    if not active:
        raise RuntimeError("no active signing key; run `leerid-gateway migrate` and start the service once")
    current = max(active, key=lambda r: r.activated_at or r.created_at)
    private = _import(json.loads(sealer.open(current.private_jwk_encrypted)))
    public = {r.kid: _import(r.public_jwk) for r in rows}
    jwks = {"keys": [r.public_jwk for r in sorted(rows, key=lambda r: r.created_at)]}
    return LoadedKeys(
        active_kid=current.kid,
        active_alg=current.alg,
        private=private,
        public=public,
        jwks=jwks,
        loaded_at=time.monotonic(),
    )


def _import(data: dict[str, Any]) -> Key:
    kty = data.get("kty")
    if kty == "EC":
        return ECKey.import_key(data)
    if kty == "RSA":
        return RSAKey.import_key(data)
    if kty == "OKP":
        return OKPKey.import_key(data)
    raise ValueError(f"unknown key type {kty}")
