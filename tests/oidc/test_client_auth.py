"""Client authentication at ACM's token endpoint (OIDC Core §9, RFC 6749 §2.3.1, RFC 7523 §3)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import jwt as pyjwt
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from leerid_gateway.demo.provider import generate_client_keypair
from leerid_gateway.oidc.client_auth import ClientAuthenticator, load_private_key
from leerid_gateway.settings import Settings

ISSUER = "https://authenticatie-ti.vlaanderen.be/op"
TRICKY_SECRET = "s3cr:et+with spaces%and%20percent/é"


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "oidc_issuer": ISSUER,
        "oidc_client_id": "eteacher",
        "oidc_client_secret": "a-real-looking-client-secret",
        "allowed_return_urls": ["https://eteacher.example/app/"],
        "secret_key": "k" * 40,
    }
    values.update(overrides)
    return Settings(**values)


def apply(authenticator: ClientAuthenticator) -> tuple[dict[str, str], dict[str, str]]:
    form: dict[str, str] = {"grant_type": "authorization_code", "code": "abc"}
    headers: dict[str, str] = {"Accept": "application/json"}
    authenticator.apply(form, headers)
    return form, headers


def basic_parts(headers: dict[str, str]) -> tuple[str, str]:
    scheme, _, value = headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    raw = base64.b64decode(value, validate=True).decode("ascii")
    assert raw.count(":") == 1, "the id and secret are urlencoded, so only the separator is a raw ':'"
    client_id, _, secret = raw.partition(":")
    return client_id, secret


def test_client_secret_basic_form_urlencodes_before_base64() -> None:
    """RFC 6749 §2.3.1: base64(urlencode(client_id) ":" urlencode(client_secret))."""
    form, headers = apply(
        ClientAuthenticator(settings(oidc_client_id="e:teacher +1", oidc_client_secret=TRICKY_SECRET))
    )
    client_id, secret = basic_parts(headers)
    assert client_id == "e%3Ateacher+%2B1"
    assert secret == "s3cr%3Aet%2Bwith+spaces%25and%2520percent%2F%C3%A9"
    assert (unquote_plus(client_id), unquote_plus(secret)) == ("e:teacher +1", TRICKY_SECRET)
    # Basic puts nothing in the body (RFC 6749 §2.3.1: MUST NOT use more than one method).
    assert form == {"grant_type": "authorization_code", "code": "abc"}
    assert headers["Accept"] == "application/json"


def test_client_secret_basic_with_a_plain_secret_is_the_usual_header() -> None:
    _, headers = apply(ClientAuthenticator(settings(oidc_client_secret="plainsecret123")))
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"eteacher:plainsecret123").decode()


def test_client_secret_post_puts_both_in_the_form_unencoded() -> None:
    form, headers = apply(
        ClientAuthenticator(settings(oidc_client_auth="client_secret_post", oidc_client_secret=TRICKY_SECRET))
    )
    assert form["client_id"] == "eteacher"
    assert form["client_secret"] == TRICKY_SECRET  # the HTTP client form-encodes the body itself
    assert "Authorization" not in headers
    assert "client_assertion" not in form


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    public_jwk, private_pem = generate_client_keypair()
    path = tmp_path / "client.pem"
    path.write_text(private_pem)
    return public_jwk, path


def jwt_settings(path: Path, **overrides: Any) -> Settings:
    return settings(oidc_client_auth="private_key_jwt", oidc_private_key_file=path, **overrides)


def test_private_key_jwt_assertion_per_rfc7523(keypair: tuple[dict[str, Any], Path]) -> None:
    public_jwk, path = keypair
    before = int(time.time())
    form, headers = apply(ClientAuthenticator(jwt_settings(path, oidc_client_secret=None)))
    assert "Authorization" not in headers
    assert form["client_id"] == "eteacher"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assertion = form["client_assertion"]
    assert isinstance(assertion, str)

    # Verified with the published public key, by an independent implementation.
    public_pem = RSAKey.import_key(public_jwk).as_pem(private=False)
    claims = pyjwt.decode(assertion, public_pem, algorithms=["RS256"], audience=ISSUER)
    header = pyjwt.get_unverified_header(assertion)
    assert header["alg"] == "RS256"
    assert header["kid"] == public_jwk["kid"]
    assert claims["iss"] == claims["sub"] == "eteacher"
    assert claims["aud"] == ISSUER
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16
    assert before <= claims["iat"] <= int(time.time())
    assert 0 < claims["exp"] - claims["iat"] <= 300


def test_every_assertion_has_a_fresh_jti(keypair: tuple[dict[str, Any], Path]) -> None:
    """RFC 7523 §3 item 7: the authorization server may refuse a jti it has seen."""
    authenticator = ClientAuthenticator(jwt_settings(keypair[1]))
    jtis = {
        jwt.decode(apply(authenticator)[0]["client_assertion"], RSAKey.import_key(keypair[0])).claims["jti"]
        for _ in range(5)
    }
    assert len(jtis) == 5


def test_assertion_audience_is_configurable(keypair: tuple[dict[str, Any], Path]) -> None:
    token_endpoint = ISSUER + "/v1/token"
    form, _ = apply(ClientAuthenticator(jwt_settings(keypair[1], oidc_assertion_audience=token_endpoint)))
    key = RSAKey.import_key(keypair[0])
    assert jwt.decode(form["client_assertion"], key).claims["aud"] == token_endpoint


def test_assertion_is_not_verifiable_with_another_key(keypair: tuple[dict[str, Any], Path]) -> None:
    form, _ = apply(ClientAuthenticator(jwt_settings(keypair[1])))
    other = RSAKey.generate_key(2048).as_pem(private=False)
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(form["client_assertion"], other, algorithms=["RS256"], audience=ISSUER)


def test_es256_private_key_jwt(tmp_path: Path) -> None:
    key = ECKey.generate_key("P-256")
    path = tmp_path / "ec.pem"
    path.write_bytes(key.as_pem(private=True))
    form, _ = apply(ClientAuthenticator(jwt_settings(path, oidc_private_key_alg="ES256")))
    header = pyjwt.get_unverified_header(form["client_assertion"])
    assert header["alg"] == "ES256"
    assert header["kid"] == key.thumbprint()
    public_pem = ECKey.import_key(key.as_dict(private=False)).as_pem(private=False)
    claims = pyjwt.decode(form["client_assertion"], public_pem, algorithms=["ES256"], audience=ISSUER)
    assert claims["iss"] == "eteacher"


def test_a_public_key_file_is_refused(keypair: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    public_only = tmp_path / "public.pem"
    public_only.write_bytes(RSAKey.import_key(keypair[0]).as_pem(private=False))
    with pytest.raises(ValueError, match="no private key"):
        load_private_key(public_only, "RS256")
