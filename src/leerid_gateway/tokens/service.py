"""Internal access tokens: JWTs per RFC 9068, verification, and RFC 7662 introspection."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError

from leerid_gateway.kit.crypto import random_token
from leerid_gateway.tokens.keys import LoadedKeys

TOKEN_TYPE = "at+jwt"  # noqa: S105 (RFC 9068 §2.1 media type)


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    issuer: str
    audience: str
    ttl: int


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    expires_in: int
    claims: dict[str, Any]


def issue(keys: LoadedKeys, policy: TokenPolicy, *, sub: uuid.UUID, sid: str, client_id: str) -> IssuedToken:
    """RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti (+ sid). The opaque sub only:
    no names and no LeerID keys ever leave the gateway in a token (protocol art. 4)."""
    now = int(time.time())
    jti = random_token(16)
    claims: dict[str, Any] = {
        "iss": policy.issuer,
        "sub": str(sub),
        "aud": policy.audience,
        "exp": now + policy.ttl,
        "iat": now,
        "jti": jti,
        "client_id": client_id,
        "sid": sid,
    }
    signer = keys.signer()
    header = {"typ": TOKEN_TYPE, "alg": signer.alg, "kid": signer.kid}
    token = jwt.encode(header, claims, signer.private, algorithms=[signer.alg])
    return IssuedToken(token=token, jti=jti, expires_in=policy.ttl, claims=claims)


def verify(
    keys: LoadedKeys, policy: TokenPolicy, token: str, *, now: float | None = None
) -> dict[str, Any] | None:
    """Signature, header and claims of one of our tokens; None for anything not valid right now.

    RFC 9068 §4: typ must be at+jwt, iss ours, aud ours, signature by one of our published keys
    with the alg that key was made for, exp in the future.
    """
    # Cheap refusals first, so an attacker's random strings cost less than a real token: three
    # segments, and a header that is base64url of a JSON object (always begins "eyJ", i.e. '{"').
    if len(token) > 4096 or token.count(".") != 2 or not token.startswith("eyJ"):
        return None
    try:
        compact = jws.extract_compact(token.encode("ascii"))
        header = compact.headers()
    except (JoseError, ValueError, UnicodeError):
        return None
    kid = header.get("kid")
    key = keys.public.get(kid) if isinstance(kid, str) else None
    if key is None or header.get("typ") != TOKEN_TYPE or "crit" in header:
        return None
    alg = keys.algs[str(kid)]  # RFC 8725 §3.1: the alg the key was made for, never the header's choice
    if header.get("alg") != alg:
        return None
    try:
        claims = dict(jwt.decode(token, key, algorithms=[alg]).claims)
    except (JoseError, ValueError):
        return None
    claims["kid"] = kid  # kept with the cached claims: a token dies with its key's publication
    moment = time.time() if now is None else now
    exp = claims.get("exp")
    if (
        claims.get("iss") != policy.issuer
        or claims.get("aud") != policy.audience
        or not isinstance(exp, int)
        or exp <= moment
        or not isinstance(claims.get("sid"), str)
        or not isinstance(claims.get("sub"), str)
        or not isinstance(claims.get("jti"), str)
        or not isinstance(claims.get("iat"), int)
    ):
        return None
    return claims
