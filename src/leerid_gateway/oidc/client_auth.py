"""Client authentication at ACM's token endpoint (OIDC Core §9, RFC 6749 §2.3.1, RFC 7523 §2.2)."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import quote

from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import ECKey, RSAKey

from leerid_gateway.settings import ClientAuthMethod, Settings


def _form_encode(value: str) -> str:
    # RFC 6749 §2.3.1: id and secret are application/x-www-form-urlencoded *before* Basic encoding.
    # (Authlib's encode_client_secret_basic skips this step, so we do it here.)
    return quote(value, safe="").replace("%20", "+")


class ClientAuthenticator:
    """Adds our credentials to a token request, by the method in LEERID_OIDC_CLIENT_AUTH."""

    def __init__(self, settings: Settings) -> None:
        self.method = settings.oidc_client_auth
        self.client_id = settings.oidc_client_id
        self._secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else ""
        self._assertion_aud = settings.oidc_assertion_audience or settings.provider_issuer
        self._alg = settings.oidc_private_key_alg
        self._key: RSAKey | ECKey | None = None
        raw = f"{_form_encode(self.client_id)}:{_form_encode(self._secret)}".encode()
        self._basic = "Basic " + base64.b64encode(raw).decode()  # the same for every request
        if self.method is ClientAuthMethod.PRIVATE_KEY_JWT:
            assert settings.oidc_private_key_file is not None
            self._key = load_private_key(settings.oidc_private_key_file, self._alg)

    def apply(self, form: dict[str, str], headers: dict[str, str]) -> None:
        if self.method is ClientAuthMethod.CLIENT_SECRET_BASIC:
            headers["Authorization"] = self._basic
        elif self.method is ClientAuthMethod.CLIENT_SECRET_POST:
            form["client_id"] = self.client_id
            form["client_secret"] = self._secret
        else:
            assert self._key is not None
            # RFC 7523 §3: iss = sub = client_id, a fresh jti, a short exp; aud is the issuer for
            # ACM (configurable: LEERID_OIDC_ASSERTION_AUDIENCE).
            assertion = private_key_jwt_sign(
                self._key,
                client_id=self.client_id,
                token_endpoint=self._assertion_aud,
                alg=self._alg,
                header={"kid": self._key.kid} if self._key.kid else None,
                expires_in=60,
            )
            form["client_id"] = self.client_id
            form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            form["client_assertion"] = assertion


def load_private_key(path: Path, alg: str) -> RSAKey | ECKey:
    pem = path.read_bytes()
    key: RSAKey | ECKey
    key = RSAKey.import_key(pem) if alg.startswith("RS") else ECKey.import_key(pem)
    if not key.is_private:
        raise ValueError(f"{path} holds no private key")
    if not key.kid:
        key = type(key).import_key(pem, parameters={"kid": key.thumbprint()})
    return key
