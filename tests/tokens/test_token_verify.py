"""Internal access tokens (RFC 9068): issue, then verify everything a resource server would (§4)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt as pyjwt
import pytest
from joserfc import jws, jwt
from joserfc.jwk import Key

from leerid_gateway.tokens import keys as keys_module
from leerid_gateway.tokens.keys import LoadedKeys, SigningEntry
from leerid_gateway.tokens.service import TOKEN_TYPE, TokenPolicy, issue, verify

POLICY = TokenPolicy(issuer="https://login.eteacher.example", audience="eteacher", ttl=300)
SUB = uuid.UUID("0b7e2c1a-6f1d-4c47-9a53-1b2c3d4e5f60")
ALGS = ["ES256", "RS256", "EdDSA"]


def published(key: Key, alg: str) -> dict[str, Any]:
    """The public JWK as keys.py stores it: with ``alg`` and ``use``."""
    return {**key.as_dict(private=False), "alg": alg, "use": "sig"}


def loaded(*entries: tuple[Key, str, float]) -> LoadedKeys:
    """LoadedKeys as keys.load builds them from (key, alg, activated_at) rows."""
    signers = tuple(
        SigningEntry(kid=key.kid or "", alg=alg, activated_at=at, private=key)
        for key, alg, at in sorted(entries, key=lambda e: e[2])
    )
    jwks = [published(key, alg) for key, alg, _ in entries]
    return LoadedKeys(
        signers=signers,
        public={jwk["kid"]: keys_module._import(jwk) for jwk in jwks},
        algs={key.kid or "": alg for key, alg, _ in entries},
        jwks={"keys": jwks},
        loaded_at=time.monotonic(),
    )


def one_key(alg: str) -> LoadedKeys:
    return loaded((keys_module.generate(alg), alg, 0.0))


def active(keys: LoadedKeys) -> SigningEntry:
    return keys.signer()


def mint(keys: LoadedKeys) -> str:
    return issue(keys, POLICY, sub=SUB, sid="sid-1", client_id="eteacher-web").token


def sign(keys: LoadedKeys, claims: dict[str, Any], **header: Any) -> str:
    """A token with our active key but chosen header/claims."""
    signer = active(keys)
    full_header = {"typ": TOKEN_TYPE, "alg": signer.alg, "kid": signer.kid, **header}
    return jwt.encode(full_header, claims, signer.private, algorithms=[full_header["alg"]])


def good_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": POLICY.issuer,
        "aud": POLICY.audience,
        "sub": str(SUB),
        "sid": "sid-1",
        "client_id": "eteacher-web",
        "iat": now,
        "exp": now + 300,
        "jti": "j-1",
    }
    claims.update(overrides)
    return claims


@pytest.fixture(params=ALGS)
def keys(request: pytest.FixtureRequest) -> LoadedKeys:
    return one_key(str(request.param))


def test_round_trip(keys: LoadedKeys) -> None:
    issued = issue(keys, POLICY, sub=SUB, sid="sid-1", client_id="eteacher-web")
    claims = verify(keys, POLICY, issued.token)
    assert claims is not None
    assert claims.pop("kid") == active(keys).kid  # verify notes which key signed
    assert claims == issued.claims
    assert claims["sub"] == str(SUB)
    assert claims["exp"] - claims["iat"] == POLICY.ttl == issued.expires_in
    assert claims["jti"] == issued.jti
    # RFC 9068 §2.2: the required claims; and nothing personal beyond the opaque sub.
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid"}


def test_header_is_rfc9068(keys: LoadedKeys) -> None:
    header = pyjwt.get_unverified_header(mint(keys))
    assert header == {"typ": "at+jwt", "alg": active(keys).alg, "kid": active(keys).kid}


def test_an_independent_implementation_verifies_our_token_with_our_jwks(keys: LoadedKeys) -> None:
    jwk = pyjwt.PyJWKSet.from_dict(keys.jwks)[active(keys).kid]
    claims = pyjwt.decode(
        mint(keys), jwk.key, algorithms=[active(keys).alg], audience=POLICY.audience, issuer=POLICY.issuer
    )
    assert claims["sub"] == str(SUB)


def test_jti_is_unique_per_token(keys: LoadedKeys) -> None:
    assert len({issue(keys, POLICY, sub=SUB, sid="s", client_id="c").jti for _ in range(10)}) == 10


@pytest.mark.parametrize("typ", [None, "JWT", "at+JWT ", "application/at+jwt", "id_token"])
def test_wrong_typ_is_refused(keys: LoadedKeys, typ: str | None) -> None:
    """RFC 9068 §4: an id_token or other JWT signed by the same key must not pass as an access token."""
    header: dict[str, Any] = {"typ": typ} if typ is not None else {}
    token = sign(keys, good_claims(), **header)
    if typ is None:
        token = jws.serialize_compact(
            {"alg": active(keys).alg, "kid": active(keys).kid},
            json.dumps(good_claims()),
            active(keys).private,
            algorithms=[active(keys).alg],
        )
    assert verify(keys, POLICY, token) is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else"},
        {"aud": ["eteacher", "someone-else"]},
        {"aud": None},
        {"iss": "https://evil.example"},
        {"iss": POLICY.issuer + "/"},
        {"iss": None},
        {"sid": None},
        {"sid": 1},
        {"sub": None},
        {"sub": 42},
        {"exp": None},
        {"exp": "9999999999"},
        {"exp": 9999999999.5},
    ],
)
def test_wrong_claims_are_refused(keys: LoadedKeys, overrides: dict[str, Any]) -> None:
    claims = {k: v for k, v in good_claims(**overrides).items() if v is not None}
    assert verify(keys, POLICY, sign(keys, claims)) is None
    assert verify(keys, POLICY, sign(keys, good_claims())) is not None  # the control case


def test_expiry_is_exact_and_has_no_leeway(keys: LoadedKeys) -> None:
    now = time.time()
    token = sign(keys, good_claims(exp=int(now) + 10))
    assert verify(keys, POLICY, token, now=now) is not None
    assert verify(keys, POLICY, token, now=int(now) + 9.9) is not None
    assert verify(keys, POLICY, token, now=int(now) + 10) is None
    assert verify(keys, POLICY, token, now=now + 3600) is None


def test_unknown_kid_is_refused(keys: LoadedKeys) -> None:
    assert verify(keys, POLICY, sign(keys, good_claims(), kid="not-ours")) is None
    no_kid = jws.serialize_compact(
        {"alg": active(keys).alg, "typ": TOKEN_TYPE},
        json.dumps(good_claims()),
        active(keys).private,
        algorithms=[active(keys).alg],
    )
    assert verify(keys, POLICY, no_kid) is None


def test_a_token_from_someone_elses_key_with_our_kid_is_refused(keys: LoadedKeys) -> None:
    impostor = one_key(active(keys).alg)
    forged = jwt.encode(
        {"typ": TOKEN_TYPE, "alg": active(keys).alg, "kid": active(keys).kid},
        good_claims(),
        active(impostor).private,
        algorithms=[active(keys).alg],
    )
    assert verify(keys, POLICY, forged) is None


@pytest.mark.parametrize(
    ("key_alg", "token_alg"), [("ES256", "RS256"), ("RS256", "ES256"), ("EdDSA", "ES256")]
)
def test_alg_that_does_not_match_the_published_key_is_refused(key_alg: str, token_alg: str) -> None:
    """The header alg must be the one the kid's key was made for (RFC 8725 §3.1)."""
    keys = one_key(key_alg)
    other = keys_module.generate(token_alg)
    token = jwt.encode(
        {"typ": TOKEN_TYPE, "alg": token_alg, "kid": active(keys).kid},
        good_claims(),
        other,
        algorithms=[token_alg],
    )
    assert verify(keys, POLICY, token) is None


def test_rs256_key_cannot_be_used_with_ps256_or_rs512() -> None:
    keys = one_key("RS256")
    for alg in ("PS256", "RS512"):
        unrestricted = keys_module._import(active(keys).private.as_dict(private=True))
        token = jwt.encode(
            {"typ": TOKEN_TYPE, "alg": alg, "kid": active(keys).kid},
            good_claims(),
            unrestricted,
            algorithms=[alg],
        )
        assert verify(keys, POLICY, token) is None


def test_hs256_with_the_public_key_as_secret_is_refused() -> None:
    keys = one_key("RS256")
    public_pem = keys.public[active(keys).kid].as_pem(private=False)
    token = pyjwt.encode(
        good_claims(),
        "a-placeholder-replaced-below-by-the-pem",
        algorithm="HS256",
        headers={"typ": TOKEN_TYPE, "kid": active(keys).kid},
    )
    head, payload, _ = token.split(".")
    signature = hmac.new(public_pem, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{head}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    assert verify(keys, POLICY, forged) is None


def test_alg_none_is_refused(keys: LoadedKeys) -> None:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    token = f"{b64({'typ': TOKEN_TYPE, 'alg': 'none', 'kid': active(keys).kid})}.{b64(good_claims())}."
    assert verify(keys, POLICY, token) is None


def test_crit_header_is_refused(keys: LoadedKeys) -> None:
    token = pyjwt.encode(
        good_claims(),
        keys_module._import(active(keys).private.as_dict(private=True)).as_pem(private=True),
        algorithm=active(keys).alg,
        headers={"typ": TOKEN_TYPE, "kid": active(keys).kid, "crit": ["exp"]},
    )
    assert verify(keys, POLICY, token) is None


def test_signer_is_chosen_by_the_clock_and_every_published_key_verifies() -> None:
    """A retired key's tokens stay valid; a next key is published before it signs anything."""
    now = time.time()
    retired, current, upcoming = (keys_module.generate(a) for a in ("ES256", "RS256", "EdDSA"))
    keys = loaded(
        (retired, "ES256", now - 7200), (current, "RS256", now - 60), (upcoming, "EdDSA", now + 600)
    )
    token = mint(keys)
    assert pyjwt.get_unverified_header(token)["kid"] == current.kid
    assert verify(keys, POLICY, token) is not None
    for key, alg in ((retired, "ES256"), (upcoming, "EdDSA")):
        other = jwt.encode(
            {"typ": TOKEN_TYPE, "alg": alg, "kid": key.kid}, good_claims(), key, algorithms=[alg]
        )
        assert verify(keys, POLICY, other) is not None


def test_token_longer_than_4096_chars_is_refused(keys: LoadedKeys) -> None:
    padded = sign(keys, good_claims(pad="x" * 5000))
    assert len(padded) > 4096
    assert verify(keys, POLICY, padded) is None
    fits = sign(keys, good_claims(pad="x" * 100))
    assert len(fits) <= 4096
    assert verify(keys, POLICY, fits) is not None


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c",
        "a.b.c.d.e",
        "é.b.c",
        "....",
        "eyJ.eyJ.sig",
        "e30.e30.",
        base64.urlsafe_b64encode(b"[]").decode() + ".e30.",
        "\x00\x01\x02",
    ],
)
def test_garbage_gives_none(keys: LoadedKeys, token: str) -> None:
    assert verify(keys, POLICY, token) is None


@pytest.mark.parametrize("payload", [b"[1]", b'"x"', b"\xff", b"null", b"{}"])
def test_validly_signed_non_claims_payload_gives_none(keys: LoadedKeys, payload: bytes) -> None:
    token = jws.serialize_compact(
        {"typ": TOKEN_TYPE, "alg": active(keys).alg, "kid": active(keys).kid},
        payload,
        active(keys).private,
        algorithms=[active(keys).alg],
    )
    assert verify(keys, POLICY, token) is None
