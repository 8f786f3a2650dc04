"""An embedded, strict stand-in for the Flemish government's ACM OpenID Connect provider.

It implements the authorization code flow exactly as far as the gateway (the relying party)
uses it, and it is deliberately strict so that relying-party bugs surface in tests and in the
demo instead of against the real ACM:

* OpenID Connect Core 1.0 (authorization, token, userinfo, ID Token),
* RFC 6749 (OAuth 2.0), RFC 7636 (PKCE, S256 only), RFC 9207 (``iss`` in the authorization
  response), RFC 7523 / OIDC Core §9 (``private_key_jwt`` client authentication),
* OAuth 2.0 Form Post Response Mode, OpenID Connect Discovery 1.0 and RP-Initiated Logout 1.0.

All state lives in memory. Every read-modify-write of that state happens inside a
``threading.Lock`` with no ``await`` in between, so concurrent requests on one event loop (and
tests poking at the state from another thread while uvicorn runs) are safe.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

import jinja2
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key
from joserfc.jws import JWSRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "DEMO_PUPILS",
    "OTHER_SCHOOL_CODE",
    "OTHER_SCHOOL_NAME",
    "PARTNER_SCHOOL_CODE",
    "PARTNER_SCHOOL_NAME",
    "DemoPupil",
    "RegisteredClient",
    "StandInProvider",
    "generate_client_keypair",
]

# ---------------------------------------------------------------------------------------------
# Public data types
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoPupil:
    """A pupil one can log in as on the stand-in's login page."""

    key: str
    label: str
    sub: str
    claims: dict[str, Any]


@dataclass
class RegisteredClient:
    """A relying party registered at the stand-in (OIDC Core §2 / RFC 6749 §2)."""

    client_id: str
    redirect_uris: list[str]
    client_secret: str | None = None
    public_jwk: dict[str, Any] | None = None
    post_logout_redirect_uris: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Sample pupils
# ---------------------------------------------------------------------------------------------

PARTNER_SCHOOL_CODE: Final = "012345"
PARTNER_SCHOOL_NAME: Final = "Sint-Jozefscollege (demo)"
OTHER_SCHOOL_CODE: Final = "099999"
OTHER_SCHOOL_NAME: Final = "Atheneum Nergensland (demo)"

# Fixed, uuid4-looking constants so the demo is repeatable.
_LOTTE_ACCOUNT: Final = "3f1c2b7e-8a4d-4c6e-9b1f-2d7a5e8c0b41"
_LOTTE_LEERID: Final = "c9e4a1d2-6b3f-4e8a-a7c5-1f0d9b2e6a73"
_NOAH_ACCOUNT_TEMP: Final = "7d2e9f40-1c5b-4a3e-8f6d-0b9c2a4e7d15"  # A1
_NOAH_ACCOUNT: Final = "e5a8c3b1-4f7d-4d2a-9c0e-6b1f8a3d5c27"  # A2
_NOAH_LEERID: Final = "2b6f0d9e-3a1c-4e5b-b8d7-9f4c1e0a6b38"  # L2
_EMMA_ACCOUNT: Final = "a4d7e2c9-0b3f-4a6e-8d1c-5e9b2f7a0c64"
_EMMA_LEERID: Final = "5c0b8e3a-7d2f-4b9c-a1e6-3d8f0c5b2a91"

DEMO_PUPILS: list[DemoPupil] = [
    DemoPupil(
        key="lotte",
        label="Lotte Peeters — geïdentificeerde leerling, partnerschool",
        sub="8a3f5c1e9b2d4f6a0c7e1b3d5f9a2c4e",
        claims={
            "ov_account_uuid": _LOTTE_ACCOUNT,
            "ov_leerid_uuid": [_LOTTE_LEERID],
            "given_name": "Lotte",
            "family_name": "Peeters",
            "ov_orgcode": PARTNER_SCHOOL_CODE,
            "ov_orgnaam": PARTNER_SCHOOL_NAME,
            # Not protocol fields: the gateway must drop these.
            "email": "lotte.peeters@leerling.example.invalid",
            "ov_rol": "leerling",
        },
    ),
    DemoPupil(
        key="noah-temp",
        label="Noah Janssens — tijdelijk account (nog niet geïdentificeerd)",
        sub="1e7b3d9f5a2c4e6b8d0f2a4c6e8b1d3f",
        claims={
            # Temporary account: no ov_leerid_uuid claim at all, no historiek.
            "ov_account_uuid": _NOAH_ACCOUNT_TEMP,
            "given_name": "Noah",
            "family_name": "Janssens",
            "ov_orgcode": PARTNER_SCHOOL_CODE,
            "ov_orgnaam": PARTNER_SCHOOL_NAME,
            "email": "noah.janssens@leerling.example.invalid",
            "ov_rol": "leerling",
        },
    ),
    DemoPupil(
        key="noah",
        label="Noah Janssens — later geïdentificeerd (met historiek)",
        sub="f4c2a0e8d6b4f2a0c8e6d4b2f0a8c6e4",
        claims={
            "ov_account_uuid": _NOAH_ACCOUNT,
            "ov_leerid_uuid": [_NOAH_LEERID],
            "ov_historiek_account_uuid": [_NOAH_ACCOUNT_TEMP],
            "given_name": "Noah",
            "family_name": "Janssens",
            # This pupil reports the school as one-element arrays (seen in real integrations).
            "ov_orgcode": [PARTNER_SCHOOL_CODE],
            "ov_orgnaam": [PARTNER_SCHOOL_NAME],
            "email": "noah.janssens@leerling.example.invalid",
            "ov_rol": "leerling",
        },
    ),
    DemoPupil(
        key="emma",
        label="Emma Maes — school zonder samenwerking",
        sub="6d9a2f4b8c1e3a5d7f0b2c4e6a8d1f3b",
        claims={
            "ov_account_uuid": _EMMA_ACCOUNT,
            "ov_leerid_uuid": [_EMMA_LEERID],
            "given_name": "Emma",
            "family_name": "Maes",
            "ov_orgcode": OTHER_SCHOOL_CODE,
            "ov_orgnaam": OTHER_SCHOOL_NAME,
            "email": "emma.maes@leerling.example.invalid",
            "ov_rol": "leerling",
        },
    ),
]

# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------

#: RFC 7523 §2.2: the client assertion type for JWT bearer client authentication.
CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

CODE_LIFETIME: Final = 60  # seconds; RFC 6749 §4.1.2 recommends at most 10 minutes
ACCESS_TOKEN_LIFETIME: Final = 300
ID_TOKEN_LIFETIME: Final = 300

SCOPES_SUPPORTED: Final = ("openid", "profile", "vo", "ov_leerling")
ID_TOKEN_CLAIMS: Final = ("iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp")
ASSERTION_ALGS: Final = ("RS256", "ES256")

_FORM_URLENCODED: Final = "application/x-www-form-urlencoded"
# RFC 7636 §4.2: S256 challenge = BASE64URL(SHA256(verifier)) = 43 base64url characters.
_CHALLENGE_RE: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")
# RFC 7636 §4.1: code_verifier = 43*128unreserved.
_VERIFIER_RE: Final = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")

_TEMPLATES: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def generate_client_keypair() -> tuple[dict[str, Any], str]:
    """Make an RSA-2048 key for a private_key_jwt client: (public JWK with kid, private PEM)."""
    key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)
    public: dict[str, Any] = dict(key.as_dict(private=False))
    return public, key.as_pem(private=True).decode("ascii")


# ---------------------------------------------------------------------------------------------
# Internal records and errors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AuthRequest:
    """A validated authorization request (OIDC Core §3.1.2.1)."""

    client: RegisteredClient
    redirect_uri: str
    response_mode: str
    state: str
    nonce: str
    scope: str
    code_challenge: str
    params: dict[str, str]


@dataclass(frozen=True)
class _CodeGrant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str
    scope: str
    pupil_key: str
    auth_time: int
    expires_at: float


@dataclass(frozen=True)
class _AccessGrant:
    client_id: str
    pupil_key: str
    scope: str
    expires_at: float


class _PageError(Exception):
    """An authorization error that must NOT be redirected (RFC 6749 §4.1.2.1, first paragraph)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class _RedirectError(Exception):
    """An authorization error returned to the (validated) redirect_uri (RFC 6749 §4.1.2.1)."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        redirect_uri: str,
        state: str | None,
        response_mode: str,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state
        self.response_mode = response_mode


class _TokenError(Exception):
    """A token endpoint error response (RFC 6749 §5.2)."""

    def __init__(
        self, error: str, description: str, status: int = 400, *, basic_attempted: bool = False
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.basic_attempted = basic_attempted


class _DuplicateParameter(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _parse_form(raw: str) -> dict[str, str]:
    """Parse urlencoded parameters strictly.

    RFC 6749 §3.1/§3.2: parameters MUST NOT be included more than once, and parameters sent
    without a value MUST be treated as if they were omitted.
    """
    seen: set[str] = set()
    params: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        if name in seen:
            raise _DuplicateParameter(name)
        seen.add(name)
        if value != "":
            params[name] = value
    return params


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _s256(verifier: str) -> str:
    """RFC 7636 §4.2: code_challenge = BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _add_query(url: str, params: Mapping[str, str]) -> str:
    """Append parameters, retaining an existing query component (RFC 6749 §3.1.2)."""
    parts = urlsplit(url)
    extra = urlencode(list(params.items()))
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _is_form_urlencoded(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == _FORM_URLENCODED


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _TEMPLATES.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)


def _signing_key() -> RSAKey:
    key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)
    return key


# ---------------------------------------------------------------------------------------------
# The provider
# ---------------------------------------------------------------------------------------------


class StandInProvider:
    """A strict in-memory OpenID Connect provider that behaves like ACM for LeerID logins."""

    def __init__(
        self,
        issuer: str,
        clients: list[RegisteredClient],
        pupils: list[DemoPupil] | None = None,
        *,
        assertion_audiences: set[str] | None = None,
    ) -> None:
        parts = urlsplit(issuer)
        # OIDC Discovery §3: the issuer is a URL without query or fragment.
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"issuer must be an absolute http(s) URL: {issuer!r}")
        if parts.query or parts.fragment or issuer.endswith("/"):
            raise ValueError(f"issuer must have no query, fragment or trailing slash: {issuer!r}")
        self.issuer: str = issuer
        self._base_path: str = parts.path
        self.authorization_endpoint: str = f"{issuer}/authorize"
        self.token_endpoint: str = f"{issuer}/token"
        self.userinfo_endpoint: str = f"{issuer}/userinfo"
        self.jwks_uri: str = f"{issuer}/jwks"
        self.end_session_endpoint: str = f"{issuer}/logout"
        self.assertion_audiences: set[str] = (
            set(assertion_audiences) if assertion_audiences is not None else {issuer, self.token_endpoint}
        )

        self._lock = threading.Lock()
        self._clients: dict[str, RegisteredClient] = {}
        for client in clients:
            self.add_client(client)
        self._pupils: dict[str, DemoPupil] = {}
        for pupil in DEMO_PUPILS if pupils is None else pupils:
            self.add_pupil(pupil)

        self._signing_key: RSAKey = _signing_key()
        self._published_keys: list[RSAKey] = [self._signing_key]

        self._codes: dict[str, _CodeGrant] = {}
        self.redeemed_codes: set[str] = set()
        self._tokens_by_code: dict[str, list[str]] = {}
        self._access_tokens: dict[str, _AccessGrant] = {}
        self._seen_jti: dict[str, float] = {}

        self.tamper: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
        self.userinfo_tamper: Callable[[dict[str, Any]], None] | None = None
        #: Time source (seconds since the epoch); tests may replace it to test expiry.
        self.clock: Callable[[], float] = time.time

        base = self._base_path
        self.app: Starlette = Starlette(
            routes=[
                Route(f"{base}/.well-known/openid-configuration", self._discovery, methods=["GET"]),
                Route(f"{base}/jwks", self._jwks, methods=["GET"]),
                Route(f"{base}/authorize", self._authorize_get, methods=["GET"]),
                Route(f"{base}/authorize", self._authorize_post, methods=["POST"]),
                Route(f"{base}/token", self._token, methods=["POST"]),
                Route(f"{base}/userinfo", self._userinfo, methods=["GET", "POST"]),
                Route(f"{base}/logout", self._logout, methods=["GET", "POST"]),
            ]
        )

    # -- configuration ------------------------------------------------------------------------

    def add_client(self, client: RegisteredClient) -> None:
        """Register (or replace) a relying party."""
        if client.public_jwk is not None and client.public_jwk.get("kty") not in ("RSA", "EC"):
            raise ValueError("public_jwk must be an RSA or EC public key")
        with self._lock:
            self._clients[client.client_id] = client

    def add_pupil(self, pupil: DemoPupil) -> None:
        """Make a pupil available on the login page (replaces one with the same key)."""
        with self._lock:
            self._pupils[pupil.key] = pupil

    @property
    def current_kid(self) -> str:
        """The kid of the key new ID Tokens are signed with."""
        kid = self._signing_key.kid
        assert kid is not None
        return kid

    def rotate_keys(self, *, keep_old: bool = False) -> str:
        """Sign with a NEW RSA-2048 key from now on and return its kid.

        By default the old key disappears from the JWKS (a hard rotation, which a relying party
        must survive by re-fetching the JWKS on an unknown kid); ``keep_old=True`` keeps
        publishing it next to the new one (a graceful rotation).
        """
        key = _signing_key()
        with self._lock:
            self._signing_key = key
            self._published_keys = [*self._published_keys, key] if keep_old else [key]
        kid = key.kid
        assert kid is not None
        return kid

    # -- discovery ----------------------------------------------------------------------------

    def discovery_document(self) -> dict[str, Any]:
        """OpenID Connect Discovery 1.0 §3 provider metadata."""
        with self._lock:
            pupil_claims = {name for pupil in self._pupils.values() for name in pupil.claims}
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "userinfo_endpoint": self.userinfo_endpoint,
            "jwks_uri": self.jwks_uri,
            "end_session_endpoint": self.end_session_endpoint,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "form_post"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
            "authorization_response_iss_parameter_supported": True,
            "subject_types_supported": ["public"],
            "scopes_supported": list(SCOPES_SUPPORTED),
            "claims_supported": [*ID_TOKEN_CLAIMS, *sorted(pupil_claims - set(ID_TOKEN_CLAIMS))],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            # Discovery §3: the default is true, so say explicitly that request_uri is refused.
            "request_uri_parameter_supported": False,
        }

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(self.discovery_document())

    def jwks(self) -> dict[str, Any]:
        """The public signing keys (RFC 7517 §5), each with kid, use "sig" and alg "RS256"."""
        with self._lock:
            keys = list(self._published_keys)
        return {"keys": [dict(key.as_dict(private=False)) for key in keys]}

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse(self.jwks())

    # -- authorization endpoint ---------------------------------------------------------------

    def _validate_authorization(self, raw: list[tuple[str, str]]) -> _AuthRequest:
        """Validate an authorization request (OIDC Core §3.1.2.1/§3.1.2.2, RFC 7636 §4.3)."""
        counts: dict[str, int] = {}
        params: dict[str, str] = {}
        for name, value in raw:
            counts[name] = counts.get(name, 0) + 1
            if value != "":  # RFC 6749 §3.1: parameters without a value are treated as omitted
                params[name] = value

        # RFC 6749 §4.1.2.1 / OIDC Core §3.1.2.6: with a missing, invalid or mismatching client_id
        # or redirect_uri the user is informed and NOT redirected.
        if counts.get("client_id", 0) > 1 or counts.get("redirect_uri", 0) > 1:
            raise _PageError("client_id of redirect_uri komt meer dan eens voor.")
        client_id = params.get("client_id")
        if client_id is None:
            raise _PageError("De parameter client_id ontbreekt.")
        with self._lock:
            client = self._clients.get(client_id)
        if client is None:
            raise _PageError(f"Onbekende client_id: {client_id}")
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None:
            # OIDC Core §3.1.2.1: redirect_uri is REQUIRED.
            raise _PageError("De parameter redirect_uri ontbreekt.")
        if redirect_uri not in client.redirect_uris:
            # OIDC Core §3.1.2.1: exact string match with a pre-registered redirection URI.
            raise _PageError("Deze redirect_uri is niet geregistreerd voor deze client.")

        state = params.get("state") if counts.get("state", 0) == 1 else None
        response_mode = params.get("response_mode", "query")

        def fail(error: str, description: str, mode: str | None = None) -> _RedirectError:
            return _RedirectError(
                error,
                description,
                redirect_uri=redirect_uri,
                state=state,
                response_mode=mode or response_mode,
            )

        if counts.get("response_mode", 0) > 1 or response_mode not in ("query", "form_post"):
            # OAuth 2.0 Multiple Response Type Encoding Practices §2.1 + Form Post Response Mode.
            raise fail("invalid_request", "unsupported response_mode", "query")
        duplicated = sorted(name for name, count in counts.items() if count > 1)
        if duplicated:
            # RFC 6749 §3.1: request parameters MUST NOT be included more than once.
            raise fail("invalid_request", f"parameter included more than once: {duplicated[0]}")
        if "request" in params:
            raise fail("request_not_supported", "request objects are not supported")  # §6
        if "request_uri" in params:
            raise fail("request_uri_not_supported", "request_uri is not supported")  # OIDC §6
        response_type = params.get("response_type")
        if response_type is None:
            raise fail("invalid_request", "response_type is required")  # RFC 6749 §4.1.1
        if response_type != "code":
            # OIDC Core §3.1.2.1: the code flow uses response_type=code (only flow offered).
            raise fail("unsupported_response_type", "only response_type=code is supported")
        if state is None:
            # ACM requires state (RFC 6749 §10.12 CSRF protection).
            raise fail("invalid_request", "state is required")
        scopes = params.get("scope", "").split()
        if "openid" not in scopes:
            # OIDC Core §3.1.2.1: scope REQUIRED, MUST contain openid.
            raise fail("invalid_scope", "scope must contain openid")
        unknown = [scope for scope in scopes if scope not in SCOPES_SUPPORTED]
        if unknown:
            raise fail("invalid_scope", f"unknown scope: {unknown[0]}")  # RFC 6749 §3.3
        nonce = params.get("nonce")
        if nonce is None:
            # ACM requires nonce (OIDC Core §3.1.2.1, §15.5.2 replay protection).
            raise fail("invalid_request", "nonce is required")
        code_challenge = params.get("code_challenge")
        if code_challenge is None:
            # RFC 7636 §4.4.1: the server requires PKCE.
            raise fail("invalid_request", "code challenge required")
        method = params.get("code_challenge_method")
        if method != "S256":
            # RFC 7636 §4.3/§4.4.1: absent means "plain", which is refused here.
            raise fail("invalid_request", "transform algorithm not supported: use S256")
        if not _CHALLENGE_RE.fullmatch(code_challenge):
            raise fail("invalid_request", "malformed code_challenge")  # RFC 7636 §4.2
        prompt = params.get("prompt", "").split()
        if "none" in prompt:
            # OIDC Core §3.1.2.1/§3.1.2.6: there is no session to reuse, user interaction needed.
            if len(prompt) > 1:
                raise fail("invalid_request", "prompt=none cannot be combined with other values")
            raise fail("login_required", "the end-user must log in")
        max_age = params.get("max_age")
        if max_age is not None and not max_age.isdigit():
            raise fail("invalid_request", "max_age must be a non-negative integer")  # §3.1.2.1

        return _AuthRequest(
            client=client,
            redirect_uri=redirect_uri,
            response_mode=response_mode,
            state=state,
            nonce=nonce,
            scope=" ".join(scopes),
            code_challenge=code_challenge,
            params=params,
        )

    def _authorization_response(
        self, redirect_uri: str, response_mode: str, params: dict[str, str]
    ) -> Response:
        """Deliver an authorization response or error to the client's redirect_uri."""
        # RFC 9207 §2: the iss parameter is in every authorization response, errors included.
        params = {**params, "iss": self.issuer}
        if response_mode == "form_post":
            # OAuth 2.0 Form Post Response Mode §2: auto-submitting HTML form, POSTed.
            return _render("provider_form_post.html", action=redirect_uri, fields=list(params.items()))
        # RFC 6749 §4.1.2: parameters in the query component of the redirection URI.
        location = _add_query(redirect_uri, params)
        return RedirectResponse(location, status_code=303, headers=_NO_STORE)

    def _error_response(self, error: _RedirectError) -> Response:
        """RFC 6749 §4.1.2.1: error, error_description and state (if present) to redirect_uri."""
        params = {"error": error.error, "error_description": error.description}
        if error.state is not None:
            params["state"] = error.state
        return self._authorization_response(error.redirect_uri, error.response_mode, params)

    def _error_page(self, error: _PageError) -> Response:
        return _render(
            "provider_login.html",
            status=error.status,
            error=error.message,
            pupils=[],
            action="",
            fields=[],
            client_id=None,
        )

    async def _authorize_get(self, request: Request) -> Response:
        """OIDC Core §3.1.2.1: authorization request via GET; shows the login page."""
        raw = parse_qsl(request.url.query, keep_blank_values=True)
        try:
            auth = self._validate_authorization(raw)
        except _PageError as error:
            return self._error_page(error)
        except _RedirectError as error:
            return self._error_response(error)
        with self._lock:
            pupils = list(self._pupils.values())
        return _render(
            "provider_login.html",
            error=None,
            pupils=pupils,
            action=f"{self._base_path}/authorize",
            fields=sorted(auth.params.items()),
            client_id=auth.client.client_id,
        )

    async def _authorize_post(self, request: Request) -> Response:
        """The login form: re-validate the request, then mint a code (RFC 6749 §4.1.2)."""
        if not _is_form_urlencoded(request):
            return self._error_page(_PageError("Verwacht een formulier (urlencoded).", 415))
        body = (await request.body()).decode("utf-8", errors="replace")
        raw = parse_qsl(body, keep_blank_values=True)
        pupil_keys = [value for name, value in raw if name == "pupil"]
        raw = [(name, value) for name, value in raw if name != "pupil"]
        # OIDC Core §3.1.2.1: the authorization endpoint MUST support POST with form parameters.
        try:
            auth = self._validate_authorization(raw)
        except _PageError as error:
            return self._error_page(error)
        except _RedirectError as error:
            return self._error_response(error)
        with self._lock:
            pupil = self._pupils.get(pupil_keys[0]) if len(pupil_keys) == 1 else None
        if pupil is None:
            return self._error_page(_PageError("Onbekende of ontbrekende leerling."))

        now = self.clock()
        # RFC 6749 §10.10: a code with at least 128 bits of entropy (here 256).
        code = secrets.token_urlsafe(32)
        grant = _CodeGrant(
            client_id=auth.client.client_id,
            redirect_uri=auth.redirect_uri,
            code_challenge=auth.code_challenge,
            nonce=auth.nonce,
            scope=auth.scope,
            pupil_key=pupil.key,
            auth_time=int(now),
            expires_at=now + CODE_LIFETIME,
        )
        with self._lock:
            self._prune(now)
            self._codes[code] = grant
        # OIDC Core §3.1.2.5 / RFC 6749 §4.1.2: code and state (+ iss, RFC 9207).
        return self._authorization_response(
            auth.redirect_uri, auth.response_mode, {"code": code, "state": auth.state}
        )

    # -- token endpoint -----------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        """OIDC Core §3.1.3 / RFC 6749 §4.1.3: exchange a code for tokens."""
        try:
            return await self._token_inner(request)
        except _TokenError as error:
            headers = dict(_NO_STORE)
            if error.basic_attempted and error.status == 401:
                # RFC 6749 §5.2: 401 with a WWW-Authenticate matching the scheme the client used.
                headers["WWW-Authenticate"] = 'Basic realm="stand-in"'
            return JSONResponse(
                {"error": error.error, "error_description": error.description},
                status_code=error.status,
                headers=headers,
            )

    async def _token_inner(self, request: Request) -> Response:
        if not _is_form_urlencoded(request):
            # RFC 6749 §4.1.3: application/x-www-form-urlencoded entity-body.
            raise _TokenError("invalid_request", "use application/x-www-form-urlencoded")
        body = await request.body()
        try:
            params = _parse_form(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise _TokenError("invalid_request", "body is not UTF-8") from exc
        except _DuplicateParameter as exc:
            raise _TokenError("invalid_request", f"parameter included more than once: {exc.name}") from exc

        client = self._authenticate_client(request, params)

        grant_type = params.get("grant_type")
        if grant_type is None:
            raise _TokenError("invalid_request", "grant_type is required")
        if grant_type != "authorization_code":
            raise _TokenError("unsupported_grant_type", "only authorization_code is supported")
        code = params.get("code")
        if code is None:
            raise _TokenError("invalid_request", "code is required")
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None:
            # RFC 6749 §4.1.3: REQUIRED because it was in the authorization request.
            raise _TokenError("invalid_request", "redirect_uri is required")

        now = self.clock()
        with self._lock:
            if code in self.redeemed_codes:
                # RFC 6749 §4.1.2: deny a second use and revoke tokens issued from that code.
                for token in self._tokens_by_code.pop(code, []):
                    self._access_tokens.pop(token, None)
                raise _TokenError("invalid_grant", "authorization code already used")
            grant = self._codes.get(code)
            if grant is None:
                raise _TokenError("invalid_grant", "unknown authorization code")
            if grant.client_id != client.client_id:
                # RFC 6749 §4.1.3: the code must have been issued to the authenticated client.
                raise _TokenError("invalid_grant", "code was issued to another client")
            # Single use (RFC 6749 §4.1.2): consumed by this attempt, whatever happens next.
            del self._codes[code]
            self.redeemed_codes.add(code)

        if now >= grant.expires_at:
            raise _TokenError("invalid_grant", "authorization code expired")  # RFC 6749 §4.1.2
        if redirect_uri != grant.redirect_uri:
            # RFC 6749 §4.1.3: identical to the redirect_uri of the authorization request.
            raise _TokenError("invalid_grant", "redirect_uri does not match")
        verifier = params.get("code_verifier")
        if verifier is None:
            raise _TokenError("invalid_grant", "code_verifier is required")  # RFC 7636 §4.5
        if not _VERIFIER_RE.fullmatch(verifier) or not hmac.compare_digest(
            _s256(verifier), grant.code_challenge
        ):
            # RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) must equal code_challenge.
            raise _TokenError("invalid_grant", "PKCE verification failed")

        with self._lock:
            pupil = self._pupils.get(grant.pupil_key)
        if pupil is None:  # pragma: no cover - pupils are never removed
            raise _TokenError("invalid_grant", "unknown end-user")

        access_token = secrets.token_urlsafe(32)
        id_token = self._make_id_token(client.client_id, pupil, grant, now)
        with self._lock:
            self._access_tokens[access_token] = _AccessGrant(
                client_id=client.client_id,
                pupil_key=pupil.key,
                scope=grant.scope,
                expires_at=now + ACCESS_TOKEN_LIFETIME,
            )
            self._tokens_by_code.setdefault(code, []).append(access_token)
        # OIDC Core §3.1.3.3 / RFC 6749 §5.1: successful token response, never cached.
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_LIFETIME,
                "scope": grant.scope,
                "id_token": id_token,
            },
            headers=_NO_STORE,
        )

    def _authenticate_client(self, request: Request, params: dict[str, str]) -> RegisteredClient:
        """Client authentication at the token endpoint (RFC 6749 §2.3, OIDC Core §9)."""
        authorization = request.headers.get("authorization")
        basic = authorization is not None and authorization[:6].lower() == "basic "
        methods: list[str] = []
        if authorization is not None:
            methods.append("client_secret_basic")
        if "client_secret" in params:
            methods.append("client_secret_post")
        if "client_assertion" in params or "client_assertion_type" in params:
            methods.append("private_key_jwt")
        if len(methods) > 1:
            # RFC 6749 §2.3: the client MUST NOT use more than one authentication method.
            raise _TokenError("invalid_request", "more than one client authentication method used")
        if not methods:
            raise _TokenError("invalid_client", "client authentication required", 401)
        if methods[0] == "client_secret_basic":
            assert authorization is not None
            if not basic:
                raise _TokenError("invalid_client", "unsupported Authorization scheme", 401)
            return self._authenticate_basic(authorization[6:].strip(), params)
        if methods[0] == "client_secret_post":
            return self._authenticate_post(params)
        return self._authenticate_assertion(params)

    def _client_for_secret(self, client_id: str, secret: str, *, basic: bool) -> RegisteredClient:
        with self._lock:
            client = self._clients.get(client_id)
        if client is None or client.client_secret is None:
            raise _TokenError("invalid_client", "unknown client or no secret", 401, basic_attempted=basic)
        if not hmac.compare_digest(client.client_secret.encode(), secret.encode()):
            raise _TokenError("invalid_client", "client authentication failed", 401, basic_attempted=basic)
        return client

    def _authenticate_basic(self, credentials: str, params: dict[str, str]) -> RegisteredClient:
        """client_secret_basic (RFC 6749 §2.3.1, RFC 7617)."""
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise _TokenError(
                "invalid_client", "malformed Basic credentials", 401, basic_attempted=True
            ) from exc
        if ":" not in decoded:
            raise _TokenError("invalid_client", "malformed Basic credentials", 401, basic_attempted=True)
        raw_id, raw_secret = decoded.split(":", 1)
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before being used as user/password.
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if "client_id" in params and params["client_id"] != client_id:
            raise _TokenError(
                "invalid_client", "client_id does not match credentials", 401, basic_attempted=True
            )
        return self._client_for_secret(client_id, secret, basic=True)

    def _authenticate_post(self, params: dict[str, str]) -> RegisteredClient:
        """client_secret_post (RFC 6749 §2.3.1, OIDC Core §9)."""
        client_id = params.get("client_id")
        if client_id is None:
            raise _TokenError("invalid_client", "client_id is required with client_secret", 401)
        return self._client_for_secret(client_id, params["client_secret"], basic=False)

    def _authenticate_assertion(self, params: dict[str, str]) -> RegisteredClient:
        """private_key_jwt (RFC 7523 §2.2/§3, OIDC Core §9)."""

        def reject(description: str) -> _TokenError:
            return _TokenError("invalid_client", description, 401)

        if params.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise reject("client_assertion_type must be " + CLIENT_ASSERTION_TYPE)
        assertion = params.get("client_assertion")
        if assertion is None:
            raise reject("client_assertion is required")
        # Find the client from the (not yet trusted) iss, then verify with that client's key.
        try:
            unverified = json.loads(base64.urlsafe_b64decode(_pad(assertion.split(".")[1])))
        except (IndexError, ValueError, binascii.Error) as exc:
            raise reject("malformed client_assertion") from exc
        if not isinstance(unverified, dict) or not isinstance(unverified.get("iss"), str):
            raise reject("client_assertion has no iss")
        client_id: str = unverified["iss"]
        if "client_id" in params and params["client_id"] != client_id:
            raise reject("client_id does not match the assertion")  # RFC 7523 §3 / RFC 7521 §4.2
        with self._lock:
            client = self._clients.get(client_id)
        if client is None or client.public_jwk is None:
            raise reject("unknown client or no public key registered")
        try:
            key = import_key(dict(client.public_jwk))
            if not isinstance(key, RSAKey | ECKey):
                raise reject("registered key is not RSA or EC")
            registry = JWSRegistry(algorithms=list(ASSERTION_ALGS), strict_check_header=False)
            obj = jws.deserialize_compact(assertion, key, registry=registry)
            claims = json.loads(obj.payload or b"")
        except (JoseError, ValueError, TypeError) as exc:
            # RFC 7523 §3 item 9: the JWT MUST be digitally signed (RS256/ES256 here).
            raise reject("client_assertion signature invalid") from exc
        if not isinstance(claims, dict):
            raise reject("client_assertion payload is not a JSON object")
        # RFC 7523 §3 items 1-2 / OIDC Core §9: iss and sub MUST both be the client_id.
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise reject("iss and sub must both be the client_id")
        # RFC 7523 §3 item 3: aud identifies the authorization server.
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(a, str) and a in self.assertion_audiences for a in audiences):
            raise reject("aud does not identify this server")
        now = self.clock()
        exp = claims.get("exp")
        # RFC 7523 §3 item 4: exp MUST be present and in the future.
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
            raise reject("client_assertion expired or has no exp")
        nbf = claims.get("nbf")
        if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + 5):
            raise reject("client_assertion not yet valid")  # RFC 7523 §3 item 5
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise reject("client_assertion has no jti")  # OIDC Core §9: jti REQUIRED
        with self._lock:
            self._prune(now)
            if jti in self._seen_jti:
                # RFC 7523 §3 item 7 / OIDC Core §9: a jti is used only once.
                raise reject("client_assertion jti already used")
            self._seen_jti[jti] = float(exp)
        return client

    # -- ID Token -----------------------------------------------------------------------------

    def _make_id_token(self, client_id: str, pupil: DemoPupil, grant: _CodeGrant, now: float) -> str:
        """OIDC Core §2 / §3.1.3.6: the ID Token, RS256-signed with the current key."""
        key = self._signing_key
        header: dict[str, Any] = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
        issued = int(now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": pupil.sub,
            "aud": client_id,
            "exp": issued + ID_TOKEN_LIFETIME,
            "iat": issued,
            "auth_time": grant.auth_time,
            "nonce": grant.nonce,
            "azp": client_id,
        }
        if self.tamper is not None:
            self.tamper(header, claims)
        return _sign(header, claims, key)

    # -- userinfo -----------------------------------------------------------------------------

    async def _userinfo(self, request: Request) -> Response:
        """OIDC Core §5.3: the UserInfo endpoint (GET and POST, bearer token in the header)."""
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            # RFC 6750 §3.1: no error code when the request carried no authentication.
            return JSONResponse(
                {"error": "invalid_request", "error_description": "bearer token required"},
                status_code=401,
                headers={**_NO_STORE, "WWW-Authenticate": 'Bearer realm="stand-in"'},
            )
        now = self.clock()
        with self._lock:
            grant = self._access_tokens.get(token)
            pupil = self._pupils.get(grant.pupil_key) if grant is not None else None
        if grant is None or pupil is None or now >= grant.expires_at:
            # OIDC Core §5.3.3 / RFC 6750 §3.1: invalid_token.
            return JSONResponse(
                {"error": "invalid_token", "error_description": "unknown or expired token"},
                status_code=401,
                headers={
                    **_NO_STORE,
                    "WWW-Authenticate": (
                        'Bearer error="invalid_token", error_description="unknown or expired access token"'
                    ),
                },
            )
        # OIDC Core §5.3.2: sub MUST be present and equal the ID Token's sub.
        body: dict[str, Any] = {"sub": pupil.sub}
        body.update({k: v for k, v in copy.deepcopy(pupil.claims).items() if k != "sub"})
        if self.userinfo_tamper is not None:
            self.userinfo_tamper(body)
        return JSONResponse(body, headers=_NO_STORE)

    # -- logout -------------------------------------------------------------------------------

    async def _logout(self, request: Request) -> Response:
        """OpenID Connect RP-Initiated Logout 1.0 §2-§3 (GET and POST)."""
        if request.method == "POST":
            if not _is_form_urlencoded(request):
                return _render("provider_logged_out.html", status=415, note=None)
            raw = (await request.body()).decode("utf-8", errors="replace")
        else:
            raw = request.url.query
        try:
            params = _parse_form(raw)
        except _DuplicateParameter:
            return _render("provider_logged_out.html", status=400, note=None)
        client_id = params.get("client_id")
        hint = params.get("id_token_hint")
        if hint is not None:
            hinted = self._client_from_hint(hint)
            if hinted is None or (client_id is not None and hinted != client_id):
                # RP-Initiated Logout §2: the hint must be ours and match client_id.
                return _render("provider_logged_out.html", note="Ongeldige id_token_hint.")
            client_id = hinted
        target = params.get("post_logout_redirect_uri")
        with self._lock:
            client = self._clients.get(client_id) if client_id is not None else None
        if client is not None and target in client.post_logout_redirect_uris:
            # RP-Initiated Logout §3: redirect only to a registered URI, passing state.
            state = params.get("state")
            location = _add_query(target, {"state": state}) if state else target
            return RedirectResponse(location, status_code=303, headers=_NO_STORE)
        return _render("provider_logged_out.html", note=None)

    def _client_from_hint(self, hint: str) -> str | None:
        """The client an ID Token we issued was meant for (expired ones are fine as a hint)."""
        with self._lock:
            keys = list(self._published_keys)
        for key in keys:
            try:
                obj = jws.deserialize_compact(hint, key, algorithms=["RS256"])
                claims = json.loads(obj.payload or b"")
            except (JoseError, ValueError, TypeError):
                continue
            if not isinstance(claims, dict) or claims.get("iss") != self.issuer:
                return None
            aud = claims.get("aud")
            if isinstance(aud, str):
                return aud
            if isinstance(aud, list) and len(aud) == 1 and isinstance(aud[0], str):
                return aud[0]
            return None
        return None

    # -- housekeeping -------------------------------------------------------------------------

    def _prune(self, now: float) -> None:
        """Forget expired codes, tokens and jti values (call with the lock held)."""
        for code in [c for c, g in self._codes.items() if g.expires_at <= now]:
            del self._codes[code]
        for token in [t for t, g in self._access_tokens.items() if g.expires_at <= now]:
            del self._access_tokens[token]
        for code, tokens in list(self._tokens_by_code.items()):
            live = [t for t in tokens if t in self._access_tokens]
            if live:
                self._tokens_by_code[code] = live
            else:
                del self._tokens_by_code[code]
        for jti in [j for j, exp in self._seen_jti.items() if exp <= now]:
            # An assertion with this jti has expired, so it can never be replayed.
            del self._seen_jti[jti]


def _pad(segment: str) -> str:
    return segment + "=" * (-len(segment) % 4)


def _sign(header: dict[str, Any], claims: dict[str, Any], key: RSAKey) -> str:
    """Sign the (possibly tampered) JWT.

    RS256 is the real thing (RFC 7515 via joserfc). A ``tamper`` hook may switch ``alg`` to
    "none" (unsecured JWT, RFC 7519 §6) or to HS256/384/512 keyed with the provider's PUBLIC
    key PEM (the classic algorithm-confusion attack) so relying-party defences can be tested.
    """
    payload = json.dumps(claims, separators=(",", ":")).encode("utf-8")
    alg = header.get("alg")
    if alg == "RS256":
        registry = JWSRegistry(algorithms=["RS256"], strict_check_header=False)
        return jws.serialize_compact(header, payload, key, registry=registry)
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode("utf-8")) + "." + _b64url(payload)
    )
    if alg == "none":
        return signing_input + "."
    digests = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    if isinstance(alg, str) and alg in digests:
        secret = key.as_pem(private=False)
        mac = hmac.new(secret, signing_input.encode("ascii"), digests[alg]).digest()
        return signing_input + "." + _b64url(mac)
    raise ValueError(f"the stand-in cannot sign an ID Token with alg={alg!r}")
