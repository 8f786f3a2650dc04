"""Signing keys: shared by all replicas, private parts sealed at rest, rotated without a failed
verification anywhere.

The lifecycle is driven by time, so replicas need no coordination:

- ``keys rotate`` stores a new key whose ``activated_at`` lies ``lead`` seconds in the future
  (lead > the JWKS cache lifetime we advertise + the replicas' key refresh interval). Until then it
  is **next**: published in the JWKS, signing nothing — every verifier learns it first.
- From ``activated_at`` on, the newest such key is **active**: it signs.
- The key it replaced is **retired**: still published until every token it signed has expired
  (the successor's activation + the longest token lifetime + leeway), then **expired** and gone
  from the JWKS.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.db import utcnow
from leerid_gateway.kit.crypto import Sealer
from leerid_gateway.tokens.models import SigningKey

_KEYGEN_LOCK = 0x1EE51D_01
# Tokens signed by a retired key stay verifiable this much beyond their own lifetime (clock skew).
RETIRED_GRACE = dt.timedelta(seconds=60)


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
class SigningEntry:
    kid: str
    alg: str
    activated_at: float  # epoch seconds
    private: Key


@dataclass(frozen=True, slots=True)
class LoadedKeys:
    """A snapshot of the keys; which one signs is decided by the clock, not by the snapshot."""

    signers: tuple[SigningEntry, ...]  # sorted by activation, oldest first
    public: dict[str, Key]  # kid → public key, for verification (next, active, retired)
    algs: dict[str, str]  # kid → alg the key was made for
    jwks: dict[str, Any]  # the JWKS document
    loaded_at: float

    def signer(self, now: float | None = None) -> SigningEntry:
        moment = time.time() if now is None else now
        live = [s for s in self.signers if s.activated_at <= moment]
        if not live:
            raise RuntimeError("no signing key is active yet")
        return live[-1]


@dataclass(frozen=True, slots=True)
class KeyStatus:
    kid: str
    alg: str
    state: str  # next | active | retired | expired
    created_at: dt.datetime
    activated_at: dt.datetime
    published_until: dt.datetime | None


def _new_row(key: Key, alg: str, sealer: Sealer, activated_at: dt.datetime, state: str) -> SigningKey:
    return SigningKey(
        kid=key.kid,
        alg=alg,
        state=state,
        public_jwk={**key.as_dict(private=False), "alg": alg, "use": "sig"},
        private_jwk_encrypted=sealer.seal(json.dumps(key.as_dict(private=True)).encode()),
        created_at=utcnow(),
        activated_at=activated_at,
    )


async def _lock(db: AsyncSession) -> None:
    if db.get_bind().dialect.name == "postgresql":
        from sqlalchemy import text

        await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _KEYGEN_LOCK})


async def ensure_active(db: AsyncSession, sealer: Sealer, alg: str) -> None:
    """Make the first signing key if there is none (one replica does it; the others wait)."""
    await _lock(db)
    if await db.scalar(select(SigningKey.kid).limit(1)) is not None:
        return
    db.add(_new_row(generate(alg), alg, sealer, utcnow(), "active"))
    await db.flush()


async def rotate(db: AsyncSession, sealer: Sealer, alg: str, *, lead: dt.timedelta) -> SigningKey:
    """Add the next key, signing from ``now + lead`` on. Refused while another rotation is pending."""
    await _lock(db)
    now = utcnow()
    pending = await db.scalar(select(SigningKey).where(SigningKey.activated_at > now))
    if pending is not None:
        raise ValueError(
            f"key {pending.kid} is already waiting to become active at {pending.activated_at:%c}"
        )
    row = _new_row(generate(alg), alg, sealer, now + lead, "next")
    db.add(row)
    await db.flush()
    return row


def statuses(rows: list[SigningKey], *, max_token_ttl: int, now: dt.datetime) -> list[KeyStatus]:
    """Each key's state at ``now`` (the ``state`` column is informational; time decides)."""
    ordered = sorted(rows, key=lambda r: (r.activated_at or r.created_at, r.kid))
    out = []
    live = [r for r in ordered if (r.activated_at or r.created_at) <= now]
    active = live[-1] if live else None
    for index, row in enumerate(ordered):
        activated = row.activated_at or row.created_at
        successor = ordered[index + 1] if index + 1 < len(ordered) else None
        until = None
        if successor is not None:
            until = (successor.activated_at or successor.created_at) + dt.timedelta(seconds=max_token_ttl)
            until += RETIRED_GRACE
        if activated > now:
            state = "next"
        elif row is active:
            state = "active"
        elif until is not None and until > now:
            state = "retired"
        else:
            state = "expired"
        out.append(KeyStatus(row.kid, row.alg, state, row.created_at, activated, until))
    return out


async def load(db: AsyncSession, sealer: Sealer, *, max_token_ttl: int) -> LoadedKeys:
    rows = list(await db.scalars(select(SigningKey)))
    now = utcnow()
    states = {s.kid: s for s in statuses(rows, max_token_ttl=max_token_ttl, now=now)}
    published = [r for r in rows if states[r.kid].state != "expired"]
    if not any(states[r.kid].state == "active" for r in published):
        raise RuntimeError("no active signing key; start the service once to create one")
    signers = tuple(
        SigningEntry(
            kid=r.kid,
            alg=r.alg,
            activated_at=(r.activated_at or r.created_at).timestamp(),
            private=_import(json.loads(sealer.open(r.private_jwk_encrypted))),
        )
        for r in sorted(published, key=lambda r: (r.activated_at or r.created_at, r.kid))
        if states[r.kid].state in ("next", "active")
    )
    return LoadedKeys(
        signers=signers,
        public={r.kid: _import(r.public_jwk) for r in published},
        algs={r.kid: r.alg for r in published},
        jwks={"keys": [r.public_jwk for r in sorted(published, key=lambda r: r.created_at)]},
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
