"""A lying provider: every defect a relying party must catch, one per case.

Modelled on the OpenID Foundation's relying-party conformance tests for the code flow (the test ids
of https://openid.net/certification/ "RP tests"; a case without an OIDF id says which rule it
tests). The stand-in ACM answers honestly except for exactly one lie; the gateway must refuse it
with a Dutch page (never a 500), store no session, identity or privacy-log entry — or, where the
OIDF test expects it (key rotation, no kid with a single key), accept the login.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from leerid_gateway.identity.models import Identity
from leerid_gateway.oidc.models import LoginTransaction
from leerid_gateway.sessions.models import BrowserSession
from tests.e2e.conftest import CLIENT_ID, RETURN_TO, World
from tests.e2e.test_login_failures import hop_to_callback, with_param
from tests.hostile.support import (
    EXPIRED_PAGE,
    ISS_PAGE,
    UPSTREAM_PAGE,
    assert_nothing_stored_at_all,
    assert_refused_page,
    assert_stored_once,
)
from tests.support.browser import query
from tests.support.faults import fixed, rewrite_json

Tamper = Callable[[dict[str, Any], dict[str, Any]], None]
Lie = Callable[[World], None]
ATTACKER = "https://attacker.example"


# --- the lies ------------------------------------------------------------------------------------
def id_token_lie(change: Tamper) -> Lie:
    """The provider signs (or pretends to sign) an id_token whose header/claims ``change`` edited."""

    def lie(world: World) -> None:
        world.provider.tamper = change

    return lie


def token_response_lie(change: Callable[[dict[str, Any]], None]) -> Lie:
    """The token endpoint's JSON answer is edited on its way to the gateway."""

    def lie(world: World) -> None:
        world.faults.overrides["/token"] = rewrite_json(change)

    return lie


def _claims_of(id_token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, payload, _ = id_token.split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    return decode(head), decode(payload)


def _resigned_by_attacker(*, keep_kid: bool, embed_jwk: bool = False, jku: bool = False) -> Lie:
    """The same claims, signed with a key the attacker owns (RS256, so the alg check passes)."""
    attacker = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)

    def change(body: dict[str, Any]) -> None:
        header, claims = _claims_of(body["id_token"])
        if not keep_kid:
            header["kid"] = attacker.kid
        if embed_jwk:  # RFC 7515 §4.1.3: a key in the header proves nothing about who signed
            header["jwk"] = dict(attacker.as_dict(private=False))
        if jku:  # RFC 7515 §4.1.2: the gateway must never fetch keys from a URL the token names
            header["jku"] = f"{ATTACKER}/jwks"
        body["id_token"] = jwt.encode(header, claims, attacker)

    return token_response_lie(change)


def _set(**values: Any) -> Tamper:
    def change(header: dict[str, Any], claims: dict[str, Any]) -> None:
        claims.update(values)

    return change


def _drop(*names: str) -> Tamper:
    def change(header: dict[str, Any], claims: dict[str, Any]) -> None:
        for name in names:
            claims.pop(name, None)

    return change


def _header(**values: Any) -> Tamper:
    def change(header: dict[str, Any], claims: dict[str, Any]) -> None:
        header.update(values)

    return change


def _drop_kid(header: dict[str, Any], claims: dict[str, Any]) -> None:
    header.pop("kid", None)


def _several_audiences_no_azp(header: dict[str, Any], claims: dict[str, Any]) -> None:
    claims["aud"] = [CLIENT_ID, "another-relying-party"]
    claims.pop("azp", None)


def _expired(header: dict[str, Any], claims: dict[str, Any]) -> None:
    claims["exp"] = int(time.time()) - 3600  # far beyond the 60 s leeway


def _issued_in_the_future(header: dict[str, Any], claims: dict[str, Any]) -> None:
    claims["iat"] = int(time.time()) + 3600


def _not_yet_valid(header: dict[str, Any], claims: dict[str, Any]) -> None:
    claims["nbf"] = int(time.time()) + 3600


def _kid_absent_multiple_jwks(world: World) -> None:
    """Two keys in the JWKS (a graceful rotation) and no kid: the token names no key (§10.1)."""
    world.provider.rotate_keys(keep_old=True)
    world.provider.tamper = _drop_kid


REFUSED_ID_TOKENS = [
    # Signature and algorithm (OIDC Core §3.1.3.7 steps 6-8, RFC 8725 §2.1 / §3.1)
    pytest.param(_resigned_by_attacker(keep_kid=True), id="rp-id_token-bad-sig-rs256"),
    pytest.param(id_token_lie(_header(alg="none")), id="rp-id_token-sig-none"),
    pytest.param(id_token_lie(_header(alg="HS256")), id="rp-id_token-bad-sig-hs256-public-key-as-secret"),
    pytest.param(id_token_lie(_header(alg="HS512")), id="hs512-public-key-as-secret"),
    pytest.param(_kid_absent_multiple_jwks, id="rp-id_token-kid-absent-multiple-jwks"),
    pytest.param(id_token_lie(_header(kid="no-such-key")), id="unknown-kid-even-after-refetch"),
    pytest.param(_resigned_by_attacker(keep_kid=False), id="attacker-key-attacker-kid"),
    pytest.param(_resigned_by_attacker(keep_kid=False, embed_jwk=True), id="jwk-header-injection"),
    pytest.param(_resigned_by_attacker(keep_kid=False, jku=True), id="jku-header-injection"),
    pytest.param(id_token_lie(_header(crit=["exp"])), id="unknown-crit-header-rfc7515-4.1.11"),
    # Claims (OIDC Core §3.1.3.7 steps 2-5, 9-11)
    pytest.param(id_token_lie(_set(iss=ATTACKER)), id="rp-id_token-iss"),
    pytest.param(id_token_lie(_set(aud="another-relying-party")), id="rp-id_token-aud"),
    pytest.param(id_token_lie(_several_audiences_no_azp), id="several-aud-without-azp"),
    pytest.param(id_token_lie(_set(azp="another-relying-party")), id="azp-not-us"),
    pytest.param(id_token_lie(_expired), id="expired"),
    pytest.param(id_token_lie(_drop("iat")), id="rp-id_token-iat"),
    pytest.param(id_token_lie(_issued_in_the_future), id="iat-in-the-future"),
    pytest.param(id_token_lie(_not_yet_valid), id="nbf-in-the-future"),
    pytest.param(id_token_lie(_drop("sub")), id="rp-id_token-sub"),
    pytest.param(id_token_lie(_drop("nonce")), id="nonce-missing"),
    pytest.param(id_token_lie(_set(nonce="not-the-nonce-we-sent")), id="rp-nonce-invalid"),
    pytest.param(id_token_lie(_set(at_hash="AAAAAAAAAAAAAAAAAAAAAA")), id="at_hash-mismatch-3.1.3.8"),
]


@pytest.mark.parametrize("lie", REFUSED_ID_TOKENS)
async def test_lying_id_token_is_refused(world: World, lie: Lie) -> None:
    lie(world)
    hop = hop_to_callback(world)
    answer = world.browser.follow(hop)
    assert_refused_page(answer, 502, UPSTREAM_PAGE)
    assert "Opnieuw proberen" in answer.text
    await assert_nothing_stored_at_all(world)
    # The refused login is spent: sending the same answer again does not get a second chance.
    assert await world.count(LoginTransaction) == 0
    assert_refused_page(world.browser.follow(hop), 400, EXPIRED_PAGE)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda body: body.pop("id_token"), id="no-id_token"),
        pytest.param(lambda body: body.update(id_token=12345), id="id_token-not-a-string"),
        pytest.param(lambda body: body.update(id_token="not.a.jws"), id="id_token-garbage"),
        pytest.param(lambda body: body.update(token_type="mac"), id="token_type-not-bearer"),
        pytest.param(lambda body: body.pop("access_token"), id="no-access_token"),
    ],
)
async def test_lying_token_response_is_refused(
    world: World, change: Callable[[dict[str, Any]], None]
) -> None:
    token_response_lie(change)(world)
    answer = world.browser.follow(hop_to_callback(world))
    assert_refused_page(answer, 502, UPSTREAM_PAGE)
    await assert_nothing_stored_at_all(world)


# --- what the OIDF expects to be accepted --------------------------------------------------------
async def test_rp_id_token_kid_absent_single_jwks(world: World) -> None:
    """rp-id_token-kid-absent-single-jwks: one key published, no kid: that key is unambiguous."""
    world.provider.tamper = _drop_kid
    answer = world.browser.follow(hop_to_callback(world))
    assert answer.status_code == 303, answer.text[:300]
    assert answer.headers["location"] == RETURN_TO
    await assert_stored_once(world)


@pytest.mark.parametrize("keep_old", [False, True], ids=["hard-rotation", "graceful-rotation"])
async def test_rp_key_rotation_op_sign_key(world: World, keep_old: bool) -> None:
    """rp-key-rotation-op-sign-key: ACM signs with a new key; one JWKS refetch and we accept it."""
    assert world.login("lotte").status_code == 303
    fetched = world.faults.calls.get("/jwks", 0)
    new_kid = world.provider.rotate_keys(keep_old=keep_old)
    world.browser.http.cookies.clear()

    hop = hop_to_callback(world)
    answer = world.browser.follow(hop)

    assert answer.status_code == 303, answer.text[:300]
    assert answer.headers["location"] == RETURN_TO
    assert world.faults.calls["/jwks"] == fetched + 1
    assert world.provider.current_kid == new_kid
    assert await world.count(BrowserSession) == 2
    assert await world.count(Identity) == 1


# --- the authorization response (RFC 6749 §4.1.2, RFC 9207) -------------------------------------
async def test_rfc9207_iss_mismatch_in_authorization_response(world: World) -> None:
    """RFC 9207 §2.4: another issuer's iss is a mix-up attack; the code is never redeemed."""
    hop = hop_to_callback(world)
    answer = world.browser.http.get(with_param(hop.url, iss=ATTACKER))
    assert_refused_page(answer, 400, ISS_PAGE)
    assert world.faults.calls.get("/token", 0) == 0
    await assert_nothing_stored_at_all(world)


async def test_rfc9207_iss_missing_when_the_provider_promises_it(world: World) -> None:
    """The stand-in advertises authorization_response_iss_parameter_supported: iss is then required."""
    hop = hop_to_callback(world)
    answer = world.browser.http.get(with_param(hop.url, iss=None))
    assert_refused_page(answer, 400, ISS_PAGE)
    assert world.faults.calls.get("/token", 0) == 0
    await assert_nothing_stored_at_all(world)


@pytest.mark.parametrize(
    "state",
    [
        pytest.param("forged-state", id="forged"),
        pytest.param("", id="empty"),
        pytest.param("A" * 201, id="over-long"),
    ],
)
async def test_wrong_state_is_refused(world: World, state: str) -> None:
    hop = hop_to_callback(world)
    answer = world.browser.http.get(with_param(hop.url, state=state))
    assert_refused_page(answer, 400, EXPIRED_PAGE)
    assert world.faults.calls.get("/token", 0) == 0
    await assert_nothing_stored_at_all(world)


async def test_state_of_another_login_with_this_code_is_refused(world: World) -> None:
    """Code injection inside one browser: code of login A, state of login B. PKCE (RFC 7636) binds
    the code to A's verifier, so ACM refuses the exchange and nothing is stored."""
    hop_a = hop_to_callback(world)
    hop_b = hop_to_callback(world)
    injected = with_param(hop_b.url, code=query(hop_a.url)["code"][0])
    answer = world.browser.http.get(injected)
    assert_refused_page(answer, 502, UPSTREAM_PAGE)
    await assert_nothing_stored_at_all(world)


# --- the code is single use (RFC 6749 §4.1.2, §10.5) --------------------------------------------
async def test_replayed_callback_is_refused(world: World) -> None:
    hop = hop_to_callback(world)
    assert world.browser.follow(hop).status_code == 303
    token_calls = world.faults.calls["/token"]
    replay = world.browser.follow(hop)
    assert_refused_page(replay, 400, EXPIRED_PAGE)
    assert world.faults.calls["/token"] == token_calls  # refused before ACM is asked again
    await assert_stored_once(world)


async def test_replayed_code_in_a_fresh_login_is_refused(world: World) -> None:
    """An attacker who saw a redeemed code starts their own login and injects it: ACM says
    invalid_grant (the code is spent) and no second session appears."""
    first = hop_to_callback(world)
    assert world.browser.follow(first).status_code == 303
    fresh = hop_to_callback(world)
    answer = world.browser.http.get(with_param(fresh.url, code=query(first.url)["code"][0]))
    assert_refused_page(answer, 502, UPSTREAM_PAGE)
    await assert_stored_once(world)


async def test_provider_says_invalid_grant(world: World) -> None:
    world.faults.overrides["/token"] = fixed(
        400, b'{"error": "invalid_grant", "error_description": "code already used"}'
    )
    answer = world.browser.follow(hop_to_callback(world))
    assert_refused_page(answer, 502, UPSTREAM_PAGE)
    await assert_nothing_stored_at_all(world)


# --- userinfo (OIDC Core §5.3) ------------------------------------------------------------------
async def test_rp_userinfo_bad_sub_claim(world: World) -> None:
    """rp-userinfo-bad-sub-claim: §5.3.2, a userinfo about someone else is a token substitution."""

    def other_sub(body: dict[str, Any]) -> None:
        body["sub"] = "f4c2a0e8d6b4f2a0c8e6d4b2f0a8c6e4"  # another real pupil's sub

    world.provider.userinfo_tamper = other_sub
    answer = world.browser.follow(hop_to_callback(world))
    assert_refused_page(answer, 502, UPSTREAM_PAGE)
    await assert_nothing_stored_at_all(world)


@pytest.mark.parametrize(
    "sub", [pytest.param(None, id="null"), pytest.param(12345, id="number"), pytest.param("", id="empty")]
)
async def test_userinfo_sub_of_the_wrong_type_is_refused(world: World, sub: Any) -> None:
    def odd_sub(body: dict[str, Any]) -> None:
        body["sub"] = sub

    world.provider.userinfo_tamper = odd_sub
    answer = world.browser.follow(hop_to_callback(world))
    assert_refused_page(answer, 502, UPSTREAM_PAGE)
    await assert_nothing_stored_at_all(world)


async def test_userinfo_without_sub_is_refused(world: World) -> None:
    def no_sub(body: dict[str, Any]) -> None:
        body.pop("sub", None)

    world.provider.userinfo_tamper = no_sub
    answer = world.browser.follow(hop_to_callback(world))
    assert_refused_page(answer, 502, UPSTREAM_PAGE)
    await assert_nothing_stored_at_all(world)


async def test_a_refused_lie_does_not_poison_the_next_honest_login(world: World) -> None:
    """After an alg=none token the key cache and the breaker still let an honest login through."""
    world.provider.tamper = _header(alg="none")
    assert world.browser.follow(hop_to_callback(world)).status_code == 502
    world.provider.tamper = None
    answer = world.browser.follow(hop_to_callback(world))
    assert answer.status_code == 303, answer.text[:300]
    await assert_stored_once(world)


def test_the_attackers_token_keeps_header_and_claims() -> None:
    """Guard against a vacuous case: re-signing keeps the provider's kid and claims, only the key
    (and so the signature) is the attacker's."""
    attacker = RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)
    token = jwt.encode({"alg": "RS256", "kid": "provider-kid"}, {"sub": "x"}, attacker)
    header, claims = _claims_of(token)
    assert (header["alg"], header["kid"], claims) == ("RS256", "provider-kid", {"sub": "x"})
