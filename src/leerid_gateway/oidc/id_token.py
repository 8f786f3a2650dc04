"""ID Token validation, OpenID Connect Core 1.0 §3.1.3.7, every step, nothing optional skipped."""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from leerid_gateway.kit.errors import UpstreamError
from leerid_gateway.oidc.provider import Provider


@dataclass(frozen=True, slots=True)
class IdTokenClaims:
    sub: str
    claims: dict[str, Any]


def _fail(detail: str) -> UpstreamError:
    return UpstreamError("id_token", detail)


async def validate_id_token(
    token: str,
    *,
    provider: Provider,
    client_id: str,
    nonce: str,
    algorithms: Collection[str],
    leeway: int,
    now: float | None = None,
) -> IdTokenClaims:
    """Validate an ID Token from the token endpoint and return its claims.

    §3.1.3.7: (6) signature with the provider's key, (7) alg is one we registered — never ``none``
    and never HMAC, so a public key can not be abused as an HMAC secret (RFC 8725 §2.1, §3.1);
    (2) ``iss`` exact; (3) ``aud`` contains our client_id; (4, 5) ``azp`` when several audiences,
    and equal to us when present; (9) ``exp``; (10) ``iat``; (11) ``nonce`` (§15.5.2).
    """
    try:
        compact = jws.extract_compact(token.encode("ascii"))
    except (JoseError, ValueError, UnicodeError):
        raise _fail("not a compact JWS") from None
    header = compact.headers()
    alg = header.get("alg")
    # The caller's list is not trusted to exclude them: `none` would skip the signature and an HMAC
    # would make a public key the secret (RFC 8725 §3.1), whatever the configuration says.
    if not isinstance(alg, str) or alg not in algorithms or alg == "none" or alg.startswith("HS"):
        raise _fail(f"algorithm {alg!r} is not allowed")
    if "crit" in header:
        # RFC 7515 §4.1.11: we understand no extensions, so a critical one must be refused.
        raise _fail("unsupported critical header")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _fail("kid is not a string")
    keys = await provider.signing_keys(kid)
    key = _select_key(keys, kid, alg)
    try:
        decoded = jwt.decode(token, key, algorithms=[alg])
    except (JoseError, ValueError):
        raise _fail("signature or payload invalid") from None
    claims = dict(decoded.claims)
    _check_claims(
        claims,
        issuer=provider.issuer,
        client_id=client_id,
        nonce=nonce,
        leeway=leeway,
        now=time.time() if now is None else now,
    )
    return IdTokenClaims(sub=claims["sub"], claims=claims)


def _select_key(keys: KeySet, kid: str | None, alg: str) -> Any:
    usable = [
        k
        for k in keys.keys
        if k.get("use") in (None, "sig") and k.get("alg") in (None, alg) and not k.is_private
    ]
    if kid is not None:
        for k in usable:
            if k.kid == kid:
                return k
        raise _fail("no provider key with this kid (even after refetching the JWKS)")
    # No kid: only unambiguous when the provider publishes exactly one usable key (§10.1).
    kty = "RSA" if alg.startswith(("RS", "PS")) else "EC" if alg.startswith("ES") else "OKP"
    candidates = [k for k in usable if k.key_type == kty]
    if len(candidates) != 1:
        raise _fail("id_token has no kid and the provider has several keys")
    return candidates[0]


def _check_claims(
    claims: dict[str, Any], *, issuer: str, client_id: str, nonce: str, leeway: int, now: float
) -> None:
    if claims.get("iss") != issuer:
        raise _fail("iss does not match the provider")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise _fail("sub missing or invalid")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
    if not audiences or not all(isinstance(a, str) for a in audiences) or client_id not in audiences:
        raise _fail("aud does not contain our client_id")
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        raise _fail("several audiences and no azp")
    if azp is not None and azp != client_id:
        raise _fail("azp is not our client_id")
    exp, iat = claims.get("exp"), claims.get("iat")
    if (
        not isinstance(exp, int | float)
        or not isinstance(iat, int | float)
        or not (_is_number(exp) and _is_number(iat))
    ):
        raise _fail("exp or iat missing")
    if now > exp + leeway:
        raise _fail("expired")
    if iat > now + leeway:
        raise _fail("issued in the future")
    nbf = claims.get("nbf")
    if nbf is not None and (not _is_number(nbf) or nbf > now + leeway):
        raise _fail("not yet valid")
    if claims.get("nonce") != nonce:
        raise _fail("nonce does not match this login")


def _is_number(value: Any) -> bool:
    # RFC 7519 §2 NumericDate is a number of seconds: NaN (which Python's JSON parser accepts) would
    # compare false with everything and 1e400 parses as infinity; either would never expire.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
