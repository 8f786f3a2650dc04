"""The whole journey over real HTTP: browser → gateway → stand-in ACM → gateway → eTeacher.

Each test runs on PostgreSQL and on SQLite (the ``backend`` fixture)."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs

import httpx
import jwt
import pytest

from leerid_gateway.demo.provider import DEMO_PUPILS
from leerid_gateway.identity.models import AccountAlias, Identity, IdentityEvent
from leerid_gateway.oidc.models import LoginTransaction
from leerid_gateway.privacy.models import PrivacyLogEntry
from leerid_gateway.sessions.models import BrowserSession
from tests.e2e.conftest import RETURN_TO, World, WorldFactory
from tests.support.browser import query

FLOWS = [
    ("query", "client_secret_basic"),
    ("form_post", "client_secret_post"),
    ("query", "private_key_jwt"),
    ("form_post", "private_key_jwt"),
]

LEERID_KEYS = {
    "c9e4a1d2-6b3f-4e8a-a7c5-1f0d9b2e6a73",  # lotte's leer_id_uuid
    "3f1c2b7e-8a4d-4c6e-9b1f-2d7a5e8c0b41",  # lotte's account_uuid
}


def introspect(world: World, token: str, *, basic: bool = True) -> httpx.Response:
    client_id, secret = world.internal_client
    if basic:
        return httpx.post(f"{world.url}/introspect", data={"token": token}, auth=(client_id, secret))
    return httpx.post(
        f"{world.url}/introspect", data={"token": token, "client_id": client_id, "client_secret": secret}
    )


@pytest.mark.parametrize(("response_mode", "client_auth"), FLOWS)
async def test_pupil_logs_in_gets_a_token_and_eteacher_can_trust_it(
    make_world: WorldFactory, response_mode: str, client_auth: str
) -> None:
    world: World = await make_world(response_mode=response_mode, client_auth=client_auth)

    answer = world.login("lotte")

    assert answer.status_code == 303
    assert answer.headers["location"] == RETURN_TO
    assert answer.headers["cache-control"] == "no-store"
    session_cookie = answer.cookies.get("leerid_session")
    assert session_cookie
    set_cookie = answer.headers.get_list("set-cookie")
    assert any("leerid_session=" in c and "HttpOnly" in c and "SameSite=lax" in c for c in set_cookie)

    issued = world.browser.token(world.url)
    assert issued.status_code == 200
    assert issued.headers["cache-control"] == "no-store"
    body = issued.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    token = body["access_token"]

    # An independent JWT library, fed only by our published JWKS, accepts the token.
    signing_key = jwt.PyJWKClient(
        f"{world.url}/.well-known/jwks.json", cache_keys=False
    ).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["ES256"], audience="eteacher", issuer=world.url)
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert claims["exp"] - claims["iat"] == 300
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid"}
    uuid.UUID(claims["sub"])  # opaque, minted by us
    assert not LEERID_KEYS & {str(v) for v in claims.values()}
    assert "Lotte" not in token and "Peeters" not in str(claims)

    me = world.browser.http.get(f"{world.url}/me")
    assert me.status_code == 200
    assert me.json()["sub"] == claims["sub"]
    assert me.json()["given_name"] == "Lotte"
    assert me.json()["temporary"] is False
    assert me.json()["school_code"] == "012345"

    for basic in (True, False):
        result = introspect(world, token, basic=basic)
        assert result.status_code == 200
        data = result.json()
        assert data["active"] is True
        assert data["sub"] == claims["sub"]
        assert data["sid"] == claims["sid"]
        assert data["exp"] == claims["exp"]

    # Only the protocol's fields were stored (email and ov_rol were sent and dropped).
    identity = (await world.rows(Identity))[0]
    assert identity.leer_id_uuid == "c9e4a1d2-6b3f-4e8a-a7c5-1f0d9b2e6a73"
    assert "leerling.example" not in repr(identity)

    logout = world.browser.http.post(f"{world.url}/logout")
    assert logout.status_code == 204
    assert introspect(world, token).json() == {"active": False}
    assert world.browser.token(world.url).status_code == 401
    assert await world.count(LoginTransaction) == 0


async def test_temporary_pupil_keeps_their_sub_once_identified(world: World) -> None:
    world.login("noah-temp")
    first = world.browser.http.get(f"{world.url}/me").json()
    assert first["temporary"] is True

    world.browser.http.cookies.clear()
    world.login("noah")
    second = world.browser.http.get(f"{world.url}/me").json()

    assert second["sub"] == first["sub"]
    assert second["temporary"] is False
    assert await world.count(Identity) == 1
    aliases = {row.account_uuid for row in await world.rows(AccountAlias)}
    assert aliases == {"7d2e9f40-1c5b-4a3e-8f6d-0b9c2a4e7d15", "e5a8c3b1-4f7d-4d2a-9c0e-6b1f8a3d5c27"}
    events = [(e.type, str(e.sub)) for e in await world.rows(IdentityEvent)]
    assert events == [("identity.created", first["sub"]), ("identity.identified", first["sub"])]


async def test_pupil_of_a_school_that_is_no_partner_is_refused_and_leaves_nothing(world: World) -> None:
    answer = world.login("emma")

    assert answer.status_code == 403
    assert "text/html" in answer.headers["content-type"]
    assert "Geen toegang tot eTeacher" in answer.text
    assert "https://eteacher.example/app/?error=access_denied" in answer.text
    assert "leerid_session" not in answer.cookies
    assert await world.count(Identity) == 0
    assert await world.count(AccountAlias) == 0
    assert await world.count(BrowserSession) == 0
    log = await world.rows(PrivacyLogEntry)
    assert [(e.action, e.sub) for e in log] == [("login.refused", None)]


async def test_refused_pupil_loses_open_sessions(world: World) -> None:
    """Protocol art. 3: no (more) enrolment, no access; an open session ends too."""
    world.login("lotte")
    token = world.browser.token(world.url).json()["access_token"]
    pupil = next(p for p in DEMO_PUPILS if p.key == "lotte")
    moved = type(pupil)(
        key=pupil.key, label=pupil.label, sub=pupil.sub, claims={**pupil.claims, "ov_orgcode": "099999"}
    )
    world.provider.add_pupil(moved)

    world.browser.http.cookies.clear()
    assert world.login("lotte").status_code == 403

    assert introspect(world, token).json() == {"active": False}


async def test_return_to_outside_the_allowed_list_is_refused_with_a_page(world: World) -> None:
    answer = world.browser.start_login(world.url, "https://evil.example/app/")
    assert answer.status_code == 400
    assert "Deze link is niet geldig" in answer.text
    assert "location" not in answer.headers
    assert await world.count(LoginTransaction) == 0


async def test_jwks_and_metadata_are_published(world: World) -> None:
    jwks = httpx.get(f"{world.url}/.well-known/jwks.json")
    assert jwks.status_code == 200
    keys = jwks.json()["keys"]
    assert keys and all("d" not in k for k in keys)
    meta = httpx.get(f"{world.url}/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == world.url
    assert meta["introspection_endpoint"] == f"{world.url}/introspect"
    assert meta["jwks_uri"] == f"{world.url}/.well-known/jwks.json"


async def test_health_and_readiness(world: World) -> None:
    assert httpx.get(f"{world.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{world.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "provider": "ok"}
    assert query(f"{world.url}/?a=1") == {"a": ["1"]}


async def test_events_feed_follows_identity_changes(world: World) -> None:
    client_id, secret = world.internal_client
    assert httpx.get(f"{world.url}/events").status_code == 401
    assert httpx.get(f"{world.url}/events", auth=(client_id, "wrong")).status_code == 401

    world.login("noah-temp")
    world.browser.http.cookies.clear()
    world.login("noah")

    first = httpx.get(f"{world.url}/events", params={"limit": 1}, auth=(client_id, secret)).json()
    assert [e["type"] for e in first["events"]] == ["identity.created"]
    assert first["events"][0]["data"] == {"temporary": True}
    rest = httpx.get(
        f"{world.url}/events", params={"after": first["next_cursor"]}, auth=(client_id, secret)
    ).json()
    assert [e["type"] for e in rest["events"]] == ["identity.identified"]
    assert rest["events"][0]["sub"] == first["events"][0]["sub"]
    empty = httpx.get(
        f"{world.url}/events", params={"after": rest["next_cursor"]}, auth=(client_id, secret)
    ).json()
    assert empty == {"events": [], "next_cursor": rest["next_cursor"]}
    bad = httpx.get(f"{world.url}/events", params={"after": -1}, auth=(client_id, secret))
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("response_mode", ["query", "form_post"])
async def test_the_authorization_request_carries_exactly_its_parameters(
    make_world: WorldFactory, response_mode: str
) -> None:
    """OIDC Core §3.1.2.1 with PKCE (RFC 7636 §4.3): each parameter once, the fixed ones as
    configured, state, nonce and the S256 challenge fresh and base64url for every login."""
    world: World = await make_world(response_mode=response_mode)
    seen: list[dict[str, list[str]]] = []
    for _ in range(2):
        answer = httpx.get(f"{world.url}/login", params={"return_to": RETURN_TO})
        assert answer.status_code == 303
        location = httpx.URL(answer.headers["location"])
        seen.append(parse_qs(location.query.decode(), keep_blank_values=True, strict_parsing=True))
    fixed = {
        "response_type": ["code"],
        "client_id": [world.settings.oidc_client_id],
        "redirect_uri": [f"{world.url}/callback"],
        "scope": [world.settings.oidc_scopes],
        "code_challenge_method": ["S256"],
    } | ({"response_mode": ["form_post"]} if response_mode == "form_post" else {})
    for asked in seen:
        assert {k: v for k, v in asked.items() if k in fixed} == fixed
        assert set(asked) == set(fixed) | {"state", "nonce", "code_challenge"}
        for fresh in ("state", "nonce", "code_challenge"):
            (value,) = asked[fresh]
            assert re.fullmatch(r"[A-Za-z0-9_-]{43}", value)
    assert all(seen[0][k] != seen[1][k] for k in ("state", "nonce", "code_challenge"))
