"""Every way a login can go wrong ends in a clear page and leaves no session and no half-written rows."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import pytest

from leerid_gateway.identity.models import AccountAlias, Identity
from leerid_gateway.privacy.models import PrivacyLogEntry
from leerid_gateway.sessions.models import BrowserSession
from tests.e2e.conftest import RETURN_TO, World
from tests.support.browser import Browser, Hop, query
from tests.support.faults import fixed, rewrite_json


async def assert_nothing_stored(world: World) -> None:
    assert await world.count(BrowserSession) == 0
    assert await world.count(Identity) == 0
    assert await world.count(AccountAlias) == 0
    assert await world.count(PrivacyLogEntry) == 0


def hop_to_callback(world: World, pupil: str = "lotte") -> Hop:
    start = world.browser.start_login(world.url, RETURN_TO)
    assert start.status_code == 303
    return world.browser.choose_pupil(start.headers["location"], pupil)


def with_param(url: str, **params: str | None) -> str:
    parts = urlsplit(url)
    current = {k: v[0] for k, v in query(url).items()}
    for key, value in params.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    return urlunsplit(parts._replace(query=urlencode(current)))


def assert_dutch_page(answer: httpx.Response, status: int, phrase: str) -> None:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("text/html")
    assert phrase in answer.text
    assert "Traceback" not in answer.text
    assert "leerid_session" not in answer.cookies


async def test_wrong_state_is_refused(world: World) -> None:
    hop = hop_to_callback(world)
    answer = world.browser.http.get(with_param(hop.url, state="forged-state"))
    assert_dutch_page(answer, 400, "Je aanmelding is verlopen")
    await assert_nothing_stored(world)


async def test_missing_state_is_refused(world: World) -> None:
    hop = hop_to_callback(world)
    answer = world.browser.http.get(with_param(hop.url, state=None))
    assert_dutch_page(answer, 400, "Je aanmelding is verlopen")
    await assert_nothing_stored(world)


async def test_callback_in_another_browser_is_refused(world: World) -> None:
    """The state is bound to the browser that started the login (RFC 9700 §4.7.1, login CSRF)."""
    hop = hop_to_callback(world)
    stranger = Browser()
    try:
        answer = stranger.follow(hop)
    finally:
        stranger.close()
    assert_dutch_page(answer, 400, "Je aanmelding is verlopen")
    await assert_nothing_stored(world)
    # The rightful browser can still finish its login.
    assert world.browser.follow(hop).status_code == 303


async def test_replayed_callback_is_refused(world: World) -> None:
    hop = hop_to_callback(world)
    assert world.browser.follow(hop).status_code == 303
    replay = world.browser.follow(hop)
    assert_dutch_page(replay, 400, "Je aanmelding is verlopen")
    assert await world.count(BrowserSession) == 1


async def test_iss_parameter_mismatch_is_refused(world: World) -> None:
    """RFC 9207 §2.4: a response carrying another issuer's iss is a mix-up attack."""
    hop = hop_to_callback(world)
    answer = world.browser.http.get(with_param(hop.url, iss="https://attacker.example"))
    assert_dutch_page(answer, 400, "Aanmelding geweigerd")
    await assert_nothing_stored(world)


async def test_provider_error_response_gets_a_page_with_retry(world: World) -> None:
    hop = hop_to_callback(world)
    answer = world.browser.http.get(with_param(hop.url, code=None, error="access_denied"))
    assert_dutch_page(answer, 400, "Aanmelden niet gelukt")
    assert "Opnieuw proberen" in answer.text
    await assert_nothing_stored(world)


def _nonce(header: dict[str, Any], claims: dict[str, Any]) -> None:
    claims["nonce"] = "not-the-nonce-we-sent"


def _corrupt_signature(body: dict[str, Any]) -> None:
    head, payload, signature = body["id_token"].split(".")
    body["id_token"] = f"{head}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"


def _foreign_payload(body: dict[str, Any]) -> None:
    import base64
    import json

    head, payload, signature = body["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    body["id_token"] = f"{head}.{forged}.{signature}"


async def test_nonce_mismatch_is_refused(world: World) -> None:
    world.provider.tamper = _nonce
    answer = world.browser.follow(hop_to_callback(world))
    assert_dutch_page(answer, 502, "Aanmelden lukt even niet")
    await assert_nothing_stored(world)


@pytest.mark.parametrize("tamper", [_corrupt_signature, _foreign_payload])
async def test_tampered_id_token_is_refused(world: World, tamper: Any) -> None:
    world.faults.overrides["/token"] = rewrite_json(tamper)
    answer = world.browser.follow(hop_to_callback(world))
    assert_dutch_page(answer, 502, "Aanmelden lukt even niet")
    await assert_nothing_stored(world)


async def test_provider_key_rotation_is_followed(world: World) -> None:
    """An unknown kid makes the gateway refetch the JWKS once; the login then succeeds."""
    assert world.login("lotte").status_code == 303
    jwks_calls = world.faults.calls.get("/jwks", 0)
    world.provider.rotate_keys()
    world.browser.http.cookies.clear()
    assert world.login("lotte").status_code == 303
    assert world.faults.calls["/jwks"] == jwks_calls + 1


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (401, b'{"error": "invalid_token"}', "application/json"),
        (404, b'{"error": "not_found"}', "application/json"),
        (500, b"internal error", "text/plain"),
        (200, b"<html>not json</html>", "text/html"),
        (200, b'["an", "array"]', "application/json"),
        (200, b'{"sub": "x"}', "application/json"),
        (200, b'{"ov_account_uuid": 12, "given_name": "A", "family_name": "B"}', "application/json"),
    ],
)
async def test_datastore_failures_store_nothing(
    world: World, status: int, body: bytes, content_type: str
) -> None:
    world.faults.overrides["/userinfo"] = fixed(status, body, content_type)
    answer = world.browser.follow(hop_to_callback(world))
    assert_dutch_page(answer, 502, "Aanmelden lukt even niet")
    await assert_nothing_stored(world)


async def test_userinfo_sub_must_match_the_id_token(world: World) -> None:
    """OIDC Core §5.3.2: a userinfo answer about someone else is a token substitution."""

    def other_sub(body: dict[str, Any]) -> None:
        body["sub"] = "somebody-else"

    world.provider.userinfo_tamper = other_sub
    answer = world.browser.follow(hop_to_callback(world))
    assert_dutch_page(answer, 502, "Aanmelden lukt even niet")
    await assert_nothing_stored(world)


async def test_token_endpoint_refusing_the_code_stores_nothing(world: World) -> None:
    world.faults.overrides["/token"] = fixed(400, b'{"error": "invalid_grant"}')
    answer = world.browser.follow(hop_to_callback(world))
    assert_dutch_page(answer, 502, "Aanmelden lukt even niet")
    await assert_nothing_stored(world)


async def test_token_without_session_is_problem_json(world: World) -> None:
    answer = httpx.post(f"{world.url}/token")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 401


async def test_introspection_requires_client_authentication(world: World) -> None:
    no_auth = httpx.post(f"{world.url}/introspect", data={"token": "x"})
    assert no_auth.status_code == 401
    assert no_auth.headers["www-authenticate"].startswith("Basic")
    assert no_auth.json()["error"] == "invalid_client"
    client_id, _ = world.internal_client
    wrong = httpx.post(f"{world.url}/introspect", data={"token": "x"}, auth=(client_id, "wrong"))
    assert wrong.status_code == 401
    client_id, secret = world.internal_client
    garbage = httpx.post(f"{world.url}/introspect", data={"token": "garbage"}, auth=(client_id, secret))
    assert garbage.status_code == 200
    assert garbage.json() == {"active": False}
    missing = httpx.post(f"{world.url}/introspect", data={}, auth=(client_id, secret))
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


async def test_wrong_method_is_405_problem_json_with_allow(world: World) -> None:
    answer = httpx.put(f"{world.url}/token")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/problem+json"
    assert "POST" in answer.headers["allow"]


@pytest.mark.parametrize("token", ["tökén", "a\r\nX-Injected: 1", "a\x00b"], ids=["non-ascii", "crlf", "nul"])
async def test_an_access_token_outside_rfc_6749_vschar_is_refused_before_it_is_sent(
    world: World, token: str
) -> None:
    """RFC 6749 §A.12: access-token = 1*VSCHAR. Anything else is ACM misbehaving (a Dutch retry
    page), never a 500, and never a header field to the datastore."""

    def swap(body: dict[str, Any]) -> None:
        body["access_token"] = token

    world.faults.overrides["/token"] = rewrite_json(swap)
    answer = world.browser.follow(hop_to_callback(world))
    assert_dutch_page(answer, 502, "Aanmelden lukt even niet")
    assert world.faults.calls.get("/userinfo", 0) == 0
    await assert_nothing_stored(world)
