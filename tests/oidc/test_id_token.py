"""ID Token validation, OpenID Connect Core 1.0 §3.1.3.7, against a real Provider fed by respx."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt as pyjwt
import pytest
import respx
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from leerid_gateway.kit.errors import UpstreamError
from leerid_gateway.oidc import provider as provider_module
from leerid_gateway.oidc.id_token import validate_id_token
from leerid_gateway.oidc.provider import Provider
from leerid_gateway.oidc.resilience import Upstream
from tests.oidc import CLIENT_ID, DROP, ISSUER, Clock, FakeAcm, id_token_claims, rsa_key

NONCE = "n-0S6_WzA2Mj"
LEEWAY = 60


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.{b64url(signature)}"


@pytest.fixture
def key() -> RSAKey:
    return rsa_key()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(provider_module, "time", fake)
    return fake


@pytest.fixture
def acm(key: RSAKey) -> Iterator[FakeAcm]:
    with respx.mock(assert_all_called=False) as router:
        yield FakeAcm(router, published=[key])


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make_provider(http: httpx.AsyncClient, *, min_refresh: float = 30) -> Provider:
    return Provider(Upstream(http, retries=0), ISSUER, discovery_ttl=3600, min_refresh=min_refresh)


async def validate(
    token: str, provider: Provider, *, algorithms: tuple[str, ...] = ("RS256",), now: float | None = None
) -> dict[str, Any]:
    result = await validate_id_token(
        token,
        provider=provider,
        client_id=CLIENT_ID,
        nonce=NONCE,
        algorithms=algorithms,
        leeway=LEEWAY,
        now=now,
    )
    return result.claims


async def refused(token: str, provider: Provider, match: str, **kwargs: Any) -> None:
    with pytest.raises(UpstreamError, match=match) as caught:
        await validate(token, provider, **kwargs)
    assert caught.value.kind == "id_token"


async def test_valid_token_is_accepted(acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient) -> None:
    result = await validate_id_token(
        acm.sign(id_token_claims(), key),
        provider=make_provider(http),
        client_id=CLIENT_ID,
        nonce=NONCE,
        algorithms=["RS256"],
        leeway=LEEWAY,
    )
    assert result.sub == "acm-subject-1"
    assert result.claims["nonce"] == NONCE
    assert acm.discovery_route.call_count == 1
    assert acm.jwks_route.call_count == 1


async def test_token_accepted_by_an_independent_implementation_is_also_accepted_by_us(
    acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient
) -> None:
    token = pyjwt.encode(
        id_token_claims(), key.as_pem(private=True), algorithm="RS256", headers={"kid": key.kid}
    )
    assert (await validate(token, make_provider(http)))["sub"] == "acm-subject-1"


async def test_es256_provider_key(acm: FakeAcm, http: httpx.AsyncClient) -> None:
    ec = ECKey.generate_key("P-256", parameters={"use": "sig", "alg": "ES256"}, auto_kid=True)
    acm.published = [ec]
    token = acm.sign(id_token_claims(), ec, alg="ES256")
    assert (await validate(token, make_provider(http), algorithms=("ES256",)))["sub"] == "acm-subject-1"
    # §3.1.3.7 (7): the alg must be one we registered, even with a good signature.
    await refused(token, make_provider(http), "not allowed", algorithms=("RS256",))


async def test_bad_signature_is_refused(acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient) -> None:
    good = acm.sign(id_token_claims(), key)
    head, _, signature = good.rpartition(".")
    tampered_payload = head.split(".")[0] + "." + b64url(json.dumps(id_token_claims(sub="other")).encode())
    await refused(tampered_payload + "." + signature, make_provider(http), "signature")
    forged_with_other_key = acm.sign(id_token_claims(), rsa_key(), kid=key.kid)
    await refused(forged_with_other_key, make_provider(http), "signature")


async def test_alg_none_is_refused(acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient) -> None:
    token = compact({"alg": "none", "kid": key.kid}, id_token_claims())
    await refused(token, make_provider(http), "not allowed")


async def test_alg_none_is_refused_even_when_the_caller_lists_it(
    acm: FakeAcm, http: httpx.AsyncClient
) -> None:
    """§3.1.3.7 (7) and RFC 8725 §3.1: with one OKP key and no kid, `none` used to select that key
    and joserfc then accepted the empty signature."""
    acm.published = [OKPKey.generate_key("Ed25519", auto_kid=True)]
    token = compact({"alg": "none"}, id_token_claims())
    await refused(token, make_provider(http), "not allowed", algorithms=("none", "EdDSA"))


async def test_hs256_signed_with_the_public_key_pem_is_refused(
    acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient
) -> None:
    """RFC 8725 §2.1/§3.1: the classic key-confusion attack, the PEM used as an HMAC secret."""
    secret = key.as_pem(private=False)
    header = {"alg": "HS256", "kid": key.kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(id_token_claims()).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(signature)}"
    await refused(token, make_provider(http), "not allowed")
    # Even if an operator listed HS256, no asymmetric key may verify an HMAC.
    await refused(token, make_provider(http), "not allowed", algorithms=("HS256", "RS256"))
    assert acm.jwks_route.call_count <= 1


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"iss": "https://evil.example/op"}, "iss"),
        ({"iss": ISSUER + "/"}, "iss"),
        ({"iss": DROP}, "iss"),
        ({"aud": "someone-else"}, "aud"),
        ({"aud": ["someone-else", "another"]}, "aud"),
        ({"aud": []}, "aud"),
        ({"aud": DROP}, "aud"),
        ({"aud": [CLIENT_ID, 7]}, "aud"),
        ({"aud": [CLIENT_ID, "other-rp"]}, "several audiences and no azp"),
        ({"aud": [CLIENT_ID, "other-rp"], "azp": "other-rp"}, "azp"),
        ({"azp": "other-rp"}, "azp"),
        ({"sub": DROP}, "sub"),
        ({"sub": ""}, "sub"),
        ({"sub": 12345}, "sub"),
        ({"sub": "x" * 256}, "sub"),
        ({"nonce": DROP}, "nonce"),
        ({"nonce": "another-login"}, "nonce"),
        ({"nonce": ""}, "nonce"),
        ({"exp": DROP}, "exp or iat"),
        ({"iat": DROP}, "exp or iat"),
        ({"exp": "9999999999"}, "exp or iat"),
        ({"exp": True}, "exp or iat"),
    ],
)
async def test_claims_are_checked(
    acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient, overrides: dict[str, Any], match: str
) -> None:
    await refused(acm.sign(id_token_claims(**overrides), key), make_provider(http), match)


async def test_several_audiences_with_our_azp_are_accepted(
    acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient
) -> None:
    claims = id_token_claims(aud=[CLIENT_ID, "other-rp"], azp=CLIENT_ID)
    assert (await validate(acm.sign(claims, key), make_provider(http)))["azp"] == CLIENT_ID


async def test_expiry_uses_the_leeway_and_no_more(acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient) -> None:
    now = time.time()
    provider = make_provider(http)
    claims = id_token_claims(now=now - 600, exp=int(now) - LEEWAY + 5)
    assert (await validate(acm.sign(claims, key), provider, now=now))["sub"]
    expired = id_token_claims(now=now - 600, exp=int(now) - LEEWAY - 5)
    await refused(acm.sign(expired, key), provider, "expired", now=now)


async def test_iat_in_the_future_beyond_the_leeway_is_refused(
    acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient
) -> None:
    now = time.time()
    provider = make_provider(http)
    assert await validate(acm.sign(id_token_claims(iat=int(now) + LEEWAY - 5), key), provider, now=now)
    await refused(acm.sign(id_token_claims(iat=int(now) + LEEWAY + 5), key), provider, "future", now=now)


async def test_nbf_in_the_future_is_refused(acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient) -> None:
    now = time.time()
    token = acm.sign(id_token_claims(nbf=int(now) + LEEWAY + 5), key)
    await refused(token, make_provider(http), "not yet valid", now=now)


@pytest.mark.parametrize("exp", ["NaN", "Infinity", "1e400"])
async def test_non_finite_exp_never_means_never_expires(
    acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient, exp: str
) -> None:
    """RFC 7519 §2 NumericDate is a finite number of seconds; RFC 8259 §6 has no NaN or Infinity."""
    claims = id_token_claims(exp=0)
    payload = json.dumps(claims).replace('"exp": 0', f'"exp": {exp}').encode()
    token = compact_signed({"alg": "RS256", "kid": key.kid}, payload, key)
    await refused(token, make_provider(http), "exp or iat")


def compact_signed(header: dict[str, Any], payload: bytes, key: RSAKey) -> str:
    return jws.serialize_compact(header, payload, key)


async def test_no_kid_with_a_single_key_is_accepted(
    acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient
) -> None:
    token = acm.sign(id_token_claims(), key, kid=None)
    assert "kid" not in pyjwt.get_unverified_header(token)
    assert (await validate(token, make_provider(http)))["sub"] == "acm-subject-1"


async def test_no_kid_with_several_keys_is_refused(
    acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient
) -> None:
    acm.published = [key, rsa_key()]
    token = acm.sign(id_token_claims(), key, kid=None)
    await refused(token, make_provider(http), "no kid")


async def test_unknown_kid_refetches_the_jwks_once_and_accepts_the_rotated_key(
    acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient, clock: Clock
) -> None:
    provider = make_provider(http, min_refresh=30)
    assert await validate(acm.sign(id_token_claims(), key), provider)
    assert acm.jwks_route.call_count == 1

    rotated = rsa_key()
    acm.published = [rotated]
    clock.advance(31)
    assert await validate(acm.sign(id_token_claims(), rotated), provider)
    assert acm.jwks_route.call_count == 2
    # The new key is cached: no further fetch for the next login.
    assert await validate(acm.sign(id_token_claims(), rotated), provider)
    assert acm.jwks_route.call_count == 2


async def test_unknown_kid_refetch_is_rate_limited(
    acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient, clock: Clock
) -> None:
    provider = make_provider(http, min_refresh=30)
    assert await validate(acm.sign(id_token_claims(), key), provider)
    assert acm.jwks_route.call_count == 1

    rotated = rsa_key()
    acm.published = [key, rotated]
    for _ in range(5):
        await refused(acm.sign(id_token_claims(), rotated), provider, "no provider key with this kid")
    forged = [acm.sign(id_token_claims(), rsa_key(), kid=f"forged-{i}") for i in range(5)]
    for token in forged:
        await refused(token, provider, "no provider key with this kid")
    assert acm.jwks_route.call_count == 1

    clock.advance(30)
    assert await validate(acm.sign(id_token_claims(), rotated), provider)
    assert acm.jwks_route.call_count == 2
    await refused(forged[0], provider, "no provider key with this kid")
    assert acm.jwks_route.call_count == 2


async def test_crit_header_is_refused(acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient) -> None:
    """RFC 7515 §4.1.11: a critical extension we do not understand makes the JWS invalid."""
    token = pyjwt.encode(
        id_token_claims(),
        key.as_pem(private=True),
        algorithm="RS256",
        headers={"kid": key.kid, "crit": ["exp"]},
    )
    await refused(token, make_provider(http), "critical")


@pytest.mark.parametrize(
    "token",
    ["", "not-a-jwt", "a.b", "a.b.c.d.e", "é.b.c", compact({"kid": "x"}, {}), compact({"alg": 5}, {})],
)
async def test_garbage_is_an_upstream_error(acm: FakeAcm, http: httpx.AsyncClient, token: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        await validate(token, make_provider(http))
    assert caught.value.kind == "id_token"


async def test_non_string_kid_is_refused(acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient) -> None:
    await refused(compact({"alg": "RS256", "kid": 123}, id_token_claims()), make_provider(http), "kid")


async def test_key_published_for_another_alg_is_not_used(
    acm: FakeAcm, key: RSAKey, http: httpx.AsyncClient
) -> None:
    """RFC 7517 §4.4: a JWK's ``alg`` restricts it; an RS256 key does not verify PS256."""
    unrestricted = RSAKey.import_key({k: v for k, v in key.as_dict(private=True).items() if k != "alg"})
    token = acm.sign(id_token_claims(), unrestricted, alg="PS256", kid=key.kid)
    await refused(token, make_provider(http), "no provider key", algorithms=("RS256", "PS256"))
