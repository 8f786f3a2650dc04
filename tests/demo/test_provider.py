"""Tests of the stand-in ACM OpenID Connect provider (leerid_gateway.demo.provider)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import httpx
import jwt as pyjwt
import pytest
import uvicorn
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, RSAKey

from leerid_gateway.demo.provider import (
    CLIENT_ASSERTION_TYPE,
    DEMO_PUPILS,
    DemoPupil,
    RegisteredClient,
    StandInProvider,
    generate_client_keypair,
)

ISSUER = "http://127.0.0.1:8001"
CALLBACK = "http://127.0.0.1:8000/auth/callback?tenant=demo"  # a query that must be retained
LOGGED_OUT = "http://127.0.0.1:8000/logged-out"

# A secret with characters that RFC 6749 §2.3.1 says must be form-urlencoded for Basic auth.
SECRET = "s3cr3t: with/special+chars&more"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


@dataclass
class _Form:
    action: str
    method: str
    inputs: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.body_attrs: dict[str, str] = {}
        self.noscript_button = False
        self._in_noscript = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body_attrs = a
        elif tag == "noscript":
            self._in_noscript = True
        elif tag == "form":
            self.forms.append(_Form(action=a.get("action", ""), method=a.get("method", "")))
        elif tag == "input" and self.forms:
            self.forms[-1].inputs[a["name"]] = a.get("value", "")
        elif tag == "button" and self.forms:
            if self._in_noscript:
                self.noscript_button = True
            if "name" in a:
                self.forms[-1].buttons.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "noscript":
            self._in_noscript = False


def parse_html(text: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(text)
    return parser


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)  # RFC 7636 §4.1: 43..128 unreserved characters
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


@dataclass
class Login:
    code: str
    verifier: str
    nonce: str
    state: str


def auth_params(client_id: str, challenge: str, /, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "openid profile vo ov_leerling",
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


async def login(
    http: httpx.AsyncClient, client_id: str, pupil: str = "lotte", **overrides: str | None
) -> Login:
    """Walk the login page like a browser would and return the issued code."""
    verifier, challenge = pkce_pair()
    params = auth_params(client_id, challenge, **overrides)
    page = await http.get("/authorize", params=params)
    assert page.status_code == 200, page.text
    forms = parse_html(page.text).forms
    assert len(forms) == 1
    form = forms[0]
    assert form.method == "post"
    assert form.action == "/authorize"
    assert ("pupil", pupil) in form.buttons
    response = await http.post(form.action, data={**form.inputs, "pupil": pupil})
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("http://127.0.0.1:8000/auth/callback?tenant=demo&")
    query = query_of(location)
    assert query["state"] == [params["state"]]
    assert query["iss"] == [ISSUER]  # RFC 9207
    return Login(query["code"][0], verifier, params["nonce"], params["state"])


def basic_auth(client_id: str, secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def make_assertion(
    private_pem: str,
    kid: str,
    client_id: str,
    *,
    aud: str | list[str] = ISSUER,
    jti: str | None = None,
    exp_in: int = 60,
) -> str:
    key = RSAKey.import_key(private_pem)
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "jti": jti or str(uuid.uuid4()),
        "iat": now,
        "exp": now + exp_in,
    }
    return jose_jwt.encode({"alg": "RS256", "kid": kid}, claims, key)


def token_form(lg: Login, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": lg.code,
        "redirect_uri": CALLBACK,
        "code_verifier": lg.verifier,
        **extra,
    }


async def verify_id_token(http: httpx.AsyncClient, id_token: str, client_id: str) -> dict[str, Any]:
    """Verify with an independent implementation (PyJWT) against the published JWKS."""
    jwks = (await http.get("/jwks")).json()
    kid = pyjwt.get_unverified_header(id_token)["kid"]
    key = pyjwt.PyJWKSet.from_dict(jwks)[kid].key
    claims: dict[str, Any] = pyjwt.decode(
        id_token,
        key,
        algorithms=["RS256"],
        audience=client_id,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "sub", "nonce", "auth_time"]},
    )
    return claims


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_keypair() -> tuple[dict[str, Any], str]:
    return generate_client_keypair()


@pytest.fixture
def provider(client_keypair: tuple[dict[str, Any], str]) -> StandInProvider:
    public_jwk, _ = client_keypair
    return StandInProvider(
        ISSUER,
        [
            RegisteredClient(
                "gateway-secret",
                [CALLBACK],
                client_secret=SECRET,
                post_logout_redirect_uris=[LOGGED_OUT],
            ),
            RegisteredClient("gateway-jwt", [CALLBACK], public_jwk=public_jwk),
            RegisteredClient("other", ["http://127.0.0.1:9000/cb"], client_secret="other"),
        ],
    )


@pytest.fixture
async def http(provider: StandInProvider) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=provider.app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


# ---------------------------------------------------------------------------------------------
# Discovery and keys
# ---------------------------------------------------------------------------------------------


async def test_discovery_document(http: httpx.AsyncClient) -> None:
    response = await http.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert doc["token_endpoint"] == f"{ISSUER}/token"
    assert doc["userinfo_endpoint"] == f"{ISSUER}/userinfo"
    assert doc["jwks_uri"] == f"{ISSUER}/jwks"
    assert doc["end_session_endpoint"] == f"{ISSUER}/logout"
    assert doc["response_types_supported"] == ["code"]
    assert doc["response_modes_supported"] == ["query", "form_post"]
    assert doc["grant_types_supported"] == ["authorization_code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    assert doc["token_endpoint_auth_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["subject_types_supported"] == ["public"]
    assert doc["scopes_supported"] == ["openid", "profile", "vo", "ov_leerling"]
    for claim in (
        "sub",
        "nonce",
        "ov_account_uuid",
        "ov_leerid_uuid",
        "ov_historiek_account_uuid",
        "given_name",
        "family_name",
        "ov_orgcode",
        "ov_orgnaam",
    ):
        assert claim in doc["claims_supported"]


async def test_jwks_has_only_public_signing_keys(http: httpx.AsyncClient, provider: StandInProvider) -> None:
    keys = (await http.get("/jwks")).json()["keys"]
    assert len(keys) == 1
    (key,) = keys
    assert key["kty"] == "RSA"
    assert key["use"] == "sig"
    assert key["alg"] == "RS256"
    assert key["kid"] == provider.current_kid
    assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()


def test_issuer_with_trailing_slash_is_refused() -> None:
    with pytest.raises(ValueError):
        StandInProvider(f"{ISSUER}/", [])


def test_demo_pupils_have_the_real_world_claim_shapes() -> None:
    pupils = {p.key: p for p in DEMO_PUPILS}
    assert list(pupils) == ["lotte", "noah-temp", "noah", "emma"]
    assert len({p.sub for p in DEMO_PUPILS}) == 4
    lotte, temp, noah, emma = (pupils[k] for k in ("lotte", "noah-temp", "noah", "emma"))
    assert isinstance(lotte.claims["ov_leerid_uuid"], list)
    assert len(lotte.claims["ov_leerid_uuid"]) == 1
    assert lotte.claims["ov_orgcode"] == "012345"
    assert "ov_leerid_uuid" not in temp.claims
    assert "ov_historiek_account_uuid" not in temp.claims
    assert temp.claims["ov_orgcode"] == "012345"
    assert noah.claims["ov_historiek_account_uuid"] == [temp.claims["ov_account_uuid"]]
    assert noah.claims["ov_account_uuid"] != temp.claims["ov_account_uuid"]
    assert noah.claims["ov_orgcode"] == ["012345"]
    assert noah.sub != temp.sub
    assert emma.claims["ov_orgcode"] == "099999"
    for pupil in DEMO_PUPILS:
        assert pupil.claims["email"].endswith(".invalid")
        assert pupil.claims["ov_rol"] == "leerling"
        assert uuid.UUID(pupil.claims["ov_account_uuid"]).version == 4


# ---------------------------------------------------------------------------------------------
# Full code flow with each client authentication method
# ---------------------------------------------------------------------------------------------


async def test_login_page_lists_every_pupil_in_one_form(http: httpx.AsyncClient) -> None:
    _, challenge = pkce_pair()
    params = auth_params("gateway-secret", challenge, login_hint="<script>")
    page = await http.get("/authorize", params=params)
    assert page.status_code == 200
    assert "<title>Aanmelden bij de Vlaamse overheid (demo)</title>" in page.text
    assert "stand-in voor ACM/LeerID" in page.text
    assert "<script>" not in page.text  # autoescaped
    parsed = parse_html(page.text)
    assert len(parsed.forms) == 1
    form = parsed.forms[0]
    assert form.inputs == params
    assert form.buttons == [("pupil", p.key) for p in DEMO_PUPILS]
    for pupil in DEMO_PUPILS:
        assert f"Aanmelden als {pupil.label}" in page.text


async def test_full_flow_client_secret_basic(http: httpx.AsyncClient) -> None:
    lg = await login(http, "gateway-secret", pupil="noah")
    response = await http.post(
        "/token",
        data=token_form(lg),
        headers={"Authorization": basic_auth("gateway-secret", SECRET)},
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "openid profile vo ov_leerling"

    noah = next(p for p in DEMO_PUPILS if p.key == "noah")
    claims = await verify_id_token(http, body["id_token"], "gateway-secret")
    assert claims["nonce"] == lg.nonce
    assert claims["aud"] == "gateway-secret"
    assert claims["azp"] == "gateway-secret"
    assert claims["iss"] == ISSUER
    assert claims["sub"] == noah.sub
    assert claims["exp"] - claims["iat"] == 300
    # Nothing personal beyond sub.
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp"}
    header = pyjwt.get_unverified_header(body["id_token"])
    assert header["typ"] == "JWT"
    assert header["alg"] == "RS256"

    info = await http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.json() == {"sub": noah.sub, **noah.claims}


async def test_basic_credentials_must_be_form_urlencoded(http: httpx.AsyncClient) -> None:
    """RFC 6749 §2.3.1: a raw '+' in the secret decodes to a space, so auth fails."""
    lg = await login(http, "gateway-secret")
    raw = base64.b64encode(f"gateway-secret:{SECRET}".encode()).decode()
    response = await http.post("/token", data=token_form(lg), headers={"Authorization": f"Basic {raw}"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_full_flow_client_secret_post(http: httpx.AsyncClient) -> None:
    lg = await login(http, "gateway-secret", pupil="noah-temp")
    response = await http.post(
        "/token",
        data=token_form(lg, client_id="gateway-secret", client_secret=SECRET),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    claims = await verify_id_token(http, body["id_token"], "gateway-secret")
    assert claims["nonce"] == lg.nonce
    info = (await http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})).json()
    assert "ov_leerid_uuid" not in info
    assert info["sub"] == claims["sub"]


async def test_full_flow_private_key_jwt(
    http: httpx.AsyncClient, client_keypair: tuple[dict[str, Any], str]
) -> None:
    public_jwk, private_pem = client_keypair
    lg = await login(http, "gateway-jwt", pupil="emma")
    assertion = make_assertion(private_pem, public_jwk["kid"], "gateway-jwt")
    response = await http.post(
        "/token",
        data=token_form(lg, client_assertion_type=CLIENT_ASSERTION_TYPE, client_assertion=assertion),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    claims = await verify_id_token(http, body["id_token"], "gateway-jwt")
    assert claims["nonce"] == lg.nonce
    assert claims["aud"] == "gateway-jwt"
    info = (await http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})).json()
    assert info["ov_orgcode"] == "099999"


async def test_private_key_jwt_es256_and_token_endpoint_audience(
    provider: StandInProvider, http: httpx.AsyncClient
) -> None:
    ec_private = ECKey.generate_key("P-256", auto_kid=True)
    provider.add_client(
        RegisteredClient("gateway-ec", [CALLBACK], public_jwk=dict(ec_private.as_dict(private=False)))
    )
    lg = await login(http, "gateway-ec")
    now = int(time.time())
    assertion = jose_jwt.encode(
        {"alg": "ES256", "kid": ec_private.kid},
        {
            "iss": "gateway-ec",
            "sub": "gateway-ec",
            "aud": [f"{ISSUER}/token"],
            "jti": str(uuid.uuid4()),
            "exp": now + 60,
        },
        ec_private,
    )
    response = await http.post(
        "/token",
        data=token_form(lg, client_assertion_type=CLIENT_ASSERTION_TYPE, client_assertion=assertion),
    )
    assert response.status_code == 200, response.text


# ---------------------------------------------------------------------------------------------
# Token endpoint strictness
# ---------------------------------------------------------------------------------------------


async def test_replayed_code_is_invalid_grant_and_revokes_tokens(http: httpx.AsyncClient) -> None:
    lg = await login(http, "gateway-secret")
    auth = {"Authorization": basic_auth("gateway-secret", SECRET)}
    first = await http.post("/token", data=token_form(lg), headers=auth)
    assert first.status_code == 200
    second = await http.post("/token", data=token_form(lg), headers=auth)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert second.headers["cache-control"] == "no-store"
    # RFC 6749 §4.1.2: tokens issued from a replayed code are revoked.
    info = await http.get("/userinfo", headers={"Authorization": f"Bearer {first.json()['access_token']}"})
    assert info.status_code == 401


async def test_wrong_code_verifier_is_invalid_grant(
    http: httpx.AsyncClient, provider: StandInProvider
) -> None:
    lg = await login(http, "gateway-secret")
    other_verifier, _ = pkce_pair()
    response = await http.post(
        "/token",
        data=token_form(lg, code_verifier=other_verifier),
        headers={"Authorization": basic_auth("gateway-secret", SECRET)},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert lg.code in provider.redeemed_codes


async def test_missing_code_verifier_is_invalid_grant(http: httpx.AsyncClient) -> None:
    lg = await login(http, "gateway-secret")
    form = token_form(lg)
    del form["code_verifier"]
    response = await http.post(
        "/token", data=form, headers={"Authorization": basic_auth("gateway-secret", SECRET)}
    )
    assert response.json()["error"] == "invalid_grant"


async def test_redirect_uri_must_match_at_token_endpoint(http: httpx.AsyncClient) -> None:
    lg = await login(http, "gateway-secret")
    response = await http.post(
        "/token",
        data=token_form(lg, redirect_uri="http://127.0.0.1:8000/auth/callback"),
        headers={"Authorization": basic_auth("gateway-secret", SECRET)},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_code_issued_to_another_client_is_invalid_grant(http: httpx.AsyncClient) -> None:
    lg = await login(http, "gateway-secret")
    response = await http.post(
        "/token",
        data=token_form(lg),
        headers={"Authorization": basic_auth("other", "other")},
    )
    assert response.json()["error"] == "invalid_grant"


async def test_expired_code_is_invalid_grant(http: httpx.AsyncClient, provider: StandInProvider) -> None:
    lg = await login(http, "gateway-secret")
    provider.clock = lambda: time.time() + 61
    response = await http.post(
        "/token",
        data=token_form(lg),
        headers={"Authorization": basic_auth("gateway-secret", SECRET)},
    )
    assert response.json()["error"] == "invalid_grant"


async def test_wrong_client_secret_is_401(http: httpx.AsyncClient) -> None:
    lg = await login(http, "gateway-secret")
    response = await http.post(
        "/token",
        data=token_form(lg),
        headers={"Authorization": basic_auth("gateway-secret", "wrong")},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"] == 'Basic realm="stand-in"'

    post = await http.post("/token", data=token_form(lg, client_id="gateway-secret", client_secret="wrong"))
    assert post.status_code == 401
    assert post.json()["error"] == "invalid_client"


async def test_client_must_have_the_credential_type_used(
    http: httpx.AsyncClient, client_keypair: tuple[dict[str, Any], str]
) -> None:
    """A private_key_jwt client cannot use a secret; a secret client cannot use an assertion."""
    lg = await login(http, "gateway-jwt")
    response = await http.post("/token", data=token_form(lg, client_id="gateway-jwt", client_secret=""))
    # An empty parameter counts as omitted (RFC 6749 §3.2), so there is no authentication.
    assert response.status_code == 401
    response = await http.post("/token", data=token_form(lg, client_id="gateway-jwt", client_secret="x"))
    assert response.status_code == 401
    public_jwk, private_pem = client_keypair
    assertion = make_assertion(private_pem, public_jwk["kid"], "gateway-secret")
    response = await http.post(
        "/token",
        data=token_form(lg, client_assertion_type=CLIENT_ASSERTION_TYPE, client_assertion=assertion),
    )
    assert response.status_code == 401


async def test_more_than_one_auth_method_is_refused(http: httpx.AsyncClient) -> None:
    lg = await login(http, "gateway-secret")
    response = await http.post(
        "/token",
        data=token_form(lg, client_id="gateway-secret", client_secret=SECRET),
        headers={"Authorization": basic_auth("gateway-secret", SECRET)},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_unsupported_grant_type(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        headers={"Authorization": basic_auth("gateway-secret", SECRET)},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_token_request_must_be_form_encoded(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/token",
        json={"grant_type": "authorization_code"},
        headers={"Authorization": basic_auth("gateway-secret", SECRET)},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_assertion_with_wrong_aud_is_401(
    http: httpx.AsyncClient, client_keypair: tuple[dict[str, Any], str]
) -> None:
    public_jwk, private_pem = client_keypair
    lg = await login(http, "gateway-jwt")
    assertion = make_assertion(private_pem, public_jwk["kid"], "gateway-jwt", aud="https://elsewhere.example")
    response = await http.post(
        "/token",
        data=token_form(lg, client_assertion_type=CLIENT_ASSERTION_TYPE, client_assertion=assertion),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" not in response.headers


async def test_expired_assertion_and_wrong_type_are_401(
    http: httpx.AsyncClient, client_keypair: tuple[dict[str, Any], str]
) -> None:
    public_jwk, private_pem = client_keypair
    lg = await login(http, "gateway-jwt")
    expired = make_assertion(private_pem, public_jwk["kid"], "gateway-jwt", exp_in=-5)
    response = await http.post(
        "/token",
        data=token_form(lg, client_assertion_type=CLIENT_ASSERTION_TYPE, client_assertion=expired),
    )
    assert response.status_code == 401
    good = make_assertion(private_pem, public_jwk["kid"], "gateway-jwt")
    response = await http.post(
        "/token",
        data=token_form(lg, client_assertion_type="urn:example:wrong", client_assertion=good),
    )
    assert response.status_code == 401


async def test_assertion_signed_by_another_key_is_401(http: httpx.AsyncClient) -> None:
    _, stranger_pem = generate_client_keypair()
    lg = await login(http, "gateway-jwt")
    assertion = make_assertion(stranger_pem, "stranger", "gateway-jwt")
    response = await http.post(
        "/token",
        data=token_form(lg, client_assertion_type=CLIENT_ASSERTION_TYPE, client_assertion=assertion),
    )
    assert response.status_code == 401


async def test_reused_jti_is_401(http: httpx.AsyncClient, client_keypair: tuple[dict[str, Any], str]) -> None:
    public_jwk, private_pem = client_keypair
    jti = str(uuid.uuid4())
    first_login = await login(http, "gateway-jwt")
    first = await http.post(
        "/token",
        data=token_form(
            first_login,
            client_assertion_type=CLIENT_ASSERTION_TYPE,
            client_assertion=make_assertion(private_pem, public_jwk["kid"], "gateway-jwt", jti=jti),
        ),
    )
    assert first.status_code == 200
    second_login = await login(http, "gateway-jwt")
    second = await http.post(
        "/token",
        data=token_form(
            second_login,
            client_assertion_type=CLIENT_ASSERTION_TYPE,
            client_assertion=make_assertion(private_pem, public_jwk["kid"], "gateway-jwt", jti=jti),
        ),
    )
    assert second.status_code == 401
    assert second.json()["error"] == "invalid_client"


# ---------------------------------------------------------------------------------------------
# Authorization endpoint strictness
# ---------------------------------------------------------------------------------------------


async def test_wrong_redirect_uri_shows_error_page_without_redirect(
    http: httpx.AsyncClient,
) -> None:
    _, challenge = pkce_pair()
    for overrides in (
        {"redirect_uri": "http://127.0.0.1:8000/auth/callback"},  # query part differs
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": None},
        {"client_id": "unknown"},
    ):
        params = auth_params("gateway-secret", challenge, **overrides)
        response = await http.get("/authorize", params=params)
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "De aanmeldaanvraag is ongeldig." in response.text
        assert parse_html(response.text).forms == []


async def test_missing_pkce_redirects_with_error_state_and_iss(http: httpx.AsyncClient) -> None:
    params = auth_params("gateway-secret", "x", code_challenge=None, code_challenge_method=None)
    response = await http.get("/authorize", params=params)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("http://127.0.0.1:8000/auth/callback?tenant=demo&")
    query = query_of(location)
    assert query["error"] == ["invalid_request"]
    assert query["error_description"]
    assert query["state"] == [params["state"]]
    assert query["iss"] == [ISSUER]
    assert "code" not in query


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"nonce": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "profile"}, "invalid_scope"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"prompt": "none"}, "login_required"),
        ({"request_uri": "urn:x"}, "request_uri_not_supported"),
    ],
)
async def test_invalid_authorization_requests_redirect_with_error(
    http: httpx.AsyncClient, overrides: dict[str, str | None], error: str
) -> None:
    _, challenge = pkce_pair()
    params = auth_params("gateway-secret", challenge, **overrides)
    response = await http.get("/authorize", params=params)
    assert response.status_code == 303
    query = query_of(response.headers["location"])
    assert query["error"] == [error]
    assert query["state"] == [params["state"]]
    assert query["iss"] == [ISSUER]


async def test_missing_state_is_an_error(http: httpx.AsyncClient) -> None:
    _, challenge = pkce_pair()
    response = await http.get("/authorize", params=auth_params("gateway-secret", challenge, state=None))
    assert response.status_code == 303
    query = query_of(response.headers["location"])
    assert query["error"] == ["invalid_request"]
    assert "state" not in query


async def test_duplicate_parameters_are_refused(http: httpx.AsyncClient) -> None:
    _, challenge = pkce_pair()
    params: list[tuple[str, str | int | float | bool | None]] = [
        *auth_params("gateway-secret", challenge).items(),
        ("nonce", "again"),
    ]
    response = await http.get("/authorize", params=params)
    assert response.status_code == 303
    assert query_of(response.headers["location"])["error"] == ["invalid_request"]


async def test_post_authorize_revalidates_and_refuses_unknown_pupil(
    http: httpx.AsyncClient,
) -> None:
    _, challenge = pkce_pair()
    params = auth_params("gateway-secret", challenge)
    unknown = await http.post("/authorize", data={**params, "pupil": "nobody"})
    assert unknown.status_code == 400
    missing = await http.post("/authorize", data=params)
    assert missing.status_code == 400
    tampered = await http.post(
        "/authorize", data={**params, "redirect_uri": "https://evil.example/cb", "pupil": "lotte"}
    )
    assert tampered.status_code == 400
    assert "location" not in tampered.headers
    no_pkce = await http.post(
        "/authorize", data={**params, "code_challenge_method": "plain", "pupil": "lotte"}
    )
    assert no_pkce.status_code == 303
    assert query_of(no_pkce.headers["location"])["error"] == ["invalid_request"]


async def test_form_post_response_mode(http: httpx.AsyncClient) -> None:
    _, challenge = pkce_pair()
    params = auth_params("gateway-secret", challenge, response_mode="form_post")
    page = await http.get("/authorize", params=params)
    form = parse_html(page.text).forms[0]
    response = await http.post(form.action, data={**form.inputs, "pupil": "lotte"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parsed = parse_html(response.text)
    assert parsed.body_attrs.get("onload") == "document.forms[0].submit()"
    assert parsed.noscript_button
    (auto,) = parsed.forms
    assert auto.method == "post"
    assert auto.action == CALLBACK
    assert set(auto.inputs) == {"code", "state", "iss"}
    assert auto.inputs["state"] == params["state"]
    assert auto.inputs["iss"] == ISSUER
    assert len(auto.inputs["code"]) >= 43


async def test_form_post_errors_are_posted_too(http: httpx.AsyncClient) -> None:
    params = auth_params("gateway-secret", "x", response_mode="form_post", code_challenge=None)
    response = await http.get("/authorize", params=params)
    assert response.status_code == 200
    (auto,) = parse_html(response.text).forms
    assert auto.action == CALLBACK
    assert auto.inputs["error"] == "invalid_request"
    assert auto.inputs["state"] == params["state"]
    assert auto.inputs["iss"] == ISSUER


# ---------------------------------------------------------------------------------------------
# Keys, hooks, userinfo, logout
# ---------------------------------------------------------------------------------------------


async def _secret_tokens(http: httpx.AsyncClient, pupil: str = "lotte") -> dict[str, Any]:
    lg = await login(http, "gateway-secret", pupil=pupil)
    response = await http.post(
        "/token",
        data=token_form(lg),
        headers={"Authorization": basic_auth("gateway-secret", SECRET)},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_rotate_keys_changes_the_published_kid(
    http: httpx.AsyncClient, provider: StandInProvider
) -> None:
    old_kid = (await http.get("/jwks")).json()["keys"][0]["kid"]
    old_token = (await _secret_tokens(http))["id_token"]
    assert pyjwt.get_unverified_header(old_token)["kid"] == old_kid

    new_kid = provider.rotate_keys()
    assert new_kid != old_kid
    kids = [k["kid"] for k in (await http.get("/jwks")).json()["keys"]]
    assert kids == [new_kid]  # the old key is gone

    new_token = (await _secret_tokens(http))["id_token"]
    assert pyjwt.get_unverified_header(new_token)["kid"] == new_kid
    await verify_id_token(http, new_token, "gateway-secret")

    newest = provider.rotate_keys(keep_old=True)
    kids = [k["kid"] for k in (await http.get("/jwks")).json()["keys"]]
    assert kids == [new_kid, newest]


async def test_tamper_hook_applies(http: httpx.AsyncClient, provider: StandInProvider) -> None:
    def tamper(header: dict[str, Any], claims: dict[str, Any]) -> None:
        header["kid"] = "unknown-kid"
        claims["nonce"] = "evil"
        claims["aud"] = ["gateway-secret", "someone-else"]

    provider.tamper = tamper
    id_token = (await _secret_tokens(http))["id_token"]
    assert pyjwt.get_unverified_header(id_token)["kid"] == "unknown-kid"
    claims = pyjwt.decode(id_token, options={"verify_signature": False})
    assert claims["nonce"] == "evil"
    assert claims["aud"] == ["gateway-secret", "someone-else"]

    def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> None:
        header["alg"] = "none"

    provider.tamper = unsigned
    id_token = (await _secret_tokens(http))["id_token"]
    assert id_token.endswith(".")
    assert json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))["alg"] == "none"


async def test_userinfo_tamper_hook_applies(http: httpx.AsyncClient, provider: StandInProvider) -> None:
    def tamper(body: dict[str, Any]) -> None:
        body["sub"] = "someone-else"
        body["ov_leerid_uuid"] = "not-an-array"

    provider.userinfo_tamper = tamper
    tokens = await _secret_tokens(http)
    info = (await http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})).json()
    assert info["sub"] == "someone-else"
    assert info["ov_leerid_uuid"] == "not-an-array"
    # The pupil's own data is not mutated by the hook.
    assert isinstance(DEMO_PUPILS[0].claims["ov_leerid_uuid"], list)


async def test_userinfo_rejects_unknown_and_expired_tokens(
    http: httpx.AsyncClient, provider: StandInProvider
) -> None:
    response = await http.get("/userinfo", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')

    missing = await http.get("/userinfo")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")

    tokens = await _secret_tokens(http)
    provider.clock = lambda: time.time() + 301
    expired = await http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]


async def test_add_pupil_shows_up_and_logs_in(http: httpx.AsyncClient, provider: StandInProvider) -> None:
    provider.add_pupil(
        DemoPupil(
            key="jonas",
            label="Jonas Test — extra leerling",
            sub="extra-sub",
            claims={"ov_account_uuid": str(uuid.uuid4()), "ov_orgcode": "012345"},
        )
    )
    tokens = await _secret_tokens(http, pupil="jonas")
    claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["sub"] == "extra-sub"


async def test_logout_redirects_only_to_registered_uri(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/logout",
        params={
            "client_id": "gateway-secret",
            "post_logout_redirect_uri": LOGGED_OUT,
            "state": "abc",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"{LOGGED_OUT}?state=abc"

    tokens = await _secret_tokens(http)
    hinted = await http.get(
        "/logout",
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": LOGGED_OUT},
    )
    assert hinted.status_code == 303
    assert hinted.headers["location"] == LOGGED_OUT

    page = await http.get(
        "/logout",
        params={"client_id": "gateway-secret", "post_logout_redirect_uri": "https://evil.example/"},
    )
    assert page.status_code == 200
    assert "location" not in page.headers
    assert "U bent afgemeld" in page.text


# ---------------------------------------------------------------------------------------------
# A real HTTP server on loopback (how the end-to-end tests and the demo run it)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def served_provider() -> Iterator[StandInProvider]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    provider = StandInProvider(
        f"http://127.0.0.1:{port}",
        [RegisteredClient("gateway-secret", [CALLBACK], client_secret=SECRET)],
    )
    server = uvicorn.Server(uvicorn.Config(provider.app, log_level="warning", lifespan="off", loop="asyncio"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_full_flow_over_real_http(served_provider: StandInProvider) -> None:
    issuer = served_provider.issuer
    with httpx.Client(base_url=issuer, timeout=10) as http:
        doc = http.get("/.well-known/openid-configuration").json()
        assert doc["issuer"] == issuer
        verifier, challenge = pkce_pair()
        params = auth_params("gateway-secret", challenge)
        page = http.get(doc["authorization_endpoint"], params=params)
        form = parse_html(page.text).forms[0]
        response = http.post(form.action, data={**form.inputs, "pupil": "lotte"})
        assert response.status_code == 303
        query = query_of(response.headers["location"])
        assert query["iss"] == [issuer]
        token = http.post(
            doc["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": CALLBACK,
                "code_verifier": verifier,
            },
            headers={"Authorization": basic_auth("gateway-secret", SECRET)},
        )
        assert token.status_code == 200, token.text
        id_token = token.json()["id_token"]
        jwks = http.get(doc["jwks_uri"]).json()
        key = pyjwt.PyJWKSet.from_dict(jwks)[pyjwt.get_unverified_header(id_token)["kid"]].key
        claims = pyjwt.decode(id_token, key, algorithms=["RS256"], audience="gateway-secret", issuer=issuer)
        assert claims["nonce"] == params["nonce"]
        info = http.get(
            doc["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        assert info.json()["ov_leerid_uuid"] == DEMO_PUPILS[0].claims["ov_leerid_uuid"]


async def test_concurrent_redemptions_succeed_once(http: httpx.AsyncClient) -> None:
    lg = await login(http, "gateway-secret")
    auth = {"Authorization": basic_auth("gateway-secret", SECRET)}
    responses = await asyncio.gather(
        *(http.post("/token", data=token_form(lg), headers=auth) for _ in range(5))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400, 400, 400, 400]


async def test_issuer_with_a_path() -> None:
    issuer = "http://127.0.0.1:8001/acm"
    provider = StandInProvider(issuer, [RegisteredClient("c", [CALLBACK], client_secret="s")])
    transport = httpx.ASGITransport(app=provider.app)
    async with httpx.AsyncClient(transport=transport, base_url=issuer) as http:
        doc = (await http.get(f"{issuer}/.well-known/openid-configuration")).json()
        assert doc["token_endpoint"] == f"{issuer}/token"
        _, challenge = pkce_pair()
        page = await http.get(doc["authorization_endpoint"], params=auth_params("c", challenge))
        assert parse_html(page.text).forms[0].action == "/acm/authorize"
