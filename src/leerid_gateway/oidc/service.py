"""The relying party's login flow: start (authorization request) and finish (callback).

OpenID Connect Core 1.0 §3.1 (authorization code flow), RFC 7636 (PKCE, S256), RFC 9207 (iss in
the authorization response), RFC 9700 (OAuth 2.0 security BCP). No database transaction is held
open while ACM or the datastore is being called: each database step is its own short unit of work,
and the one that stores anything happens only after every upstream answer has been checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from leerid_gateway.access import service as access
from leerid_gateway.access.cache import PartnerSchools
from leerid_gateway.db import Db, dialect_name, orm, utcnow
from leerid_gateway.identity import service as identity_service
from leerid_gateway.kit import metrics
from leerid_gateway.kit.crypto import Hasher, b64url, random_token
from leerid_gateway.kit.errors import PupilError, UpstreamError
from leerid_gateway.kit.ratelimit import RateLimiter
from leerid_gateway.leerid.profile import LeerIdProfile, normalise
from leerid_gateway.oidc import store
from leerid_gateway.oidc.client_auth import ClientAuthenticator
from leerid_gateway.oidc.id_token import IdTokenClaims, validate_id_token
from leerid_gateway.oidc.provider import Provider
from leerid_gateway.oidc.resilience import Upstream
from leerid_gateway.oidc.return_to import is_allowed
from leerid_gateway.privacy import service as privacy
from leerid_gateway.sessions import service as sessions
from leerid_gateway.settings import ResponseMode, Settings

_VSCHARS = re.compile(r"[\x20-\x7e]+")


@dataclass(frozen=True, slots=True)
class LoginStart:
    authorization_url: str
    browser_binding: str


@dataclass(frozen=True, slots=True)
class LoginResult:
    session_cookie: str
    return_to: str
    sid: str


def bad_return_to() -> PupilError:
    return PupilError(
        "return_to_not_allowed",
        title="Deze link is niet geldig",
        message="De pagina die je wou openen, mag niet via deze aanmelding bereikt worden. "
        "Ga terug naar eTeacher en probeer opnieuw aan te melden.",
    )


def login_expired(return_to: str | None = None) -> PupilError:
    return PupilError(
        "login_expired",
        title="Je aanmelding is verlopen",
        message="Deze aanmelding is verlopen of werd niet in deze browser gestart. Probeer opnieuw.",
        retry=True,
        return_to=return_to,
    )


def upstream_unavailable(return_to: str | None) -> PupilError:
    return PupilError(
        "upstream",
        status=502,
        title="Aanmelden lukt even niet",
        message="LeerID of de aanmeldingsdienst van de Vlaamse overheid gaf geen bruikbaar antwoord. "
        "Er werd niets bewaard. Probeer het over enkele ogenblikken opnieuw.",
        retry=True,
        return_to=return_to,
    )


def access_refused(return_to: str) -> PupilError:
    return PupilError(
        "no_partner_enrolment",
        status=403,
        title="Geen toegang tot eTeacher",
        message="Volgens LeerID ben je niet ingeschreven in een school die met eTeacher samenwerkt. "
        "Denk je dat dit niet klopt? Vraag het aan je leerkracht of je school.",
        return_to=return_to,
        oauth_error="access_denied",
    )


class RelyingParty:
    def __init__(
        self,
        settings: Settings,
        provider: Provider,
        upstream: Upstream,
        session_factory: async_sessionmaker[AsyncSession],
        limiter: RateLimiter,
        partners: PartnerSchools | None = None,
    ) -> None:
        self.settings = settings
        self._partners = partners
        self.provider = provider
        self._upstream = upstream
        self._limiter = limiter
        self._factory = session_factory
        self._engine: AsyncEngine = session_factory.kw["bind"]
        self._auth = ClientAuthenticator(settings)
        secret = settings.secret_key.get_secret_value()
        self._state_hasher = Hasher(secret, "login-state")
        self._browser_hasher = Hasher(secret, "login-browser")
        self.session_hasher = Hasher(secret, "session")
        # §3.1.2.1 authentication request: the parameters that are the same for every login.
        fixed = {
            "response_type": "code",
            "client_id": settings.oidc_client_id,
            "redirect_uri": settings.redirect_uri,
            "scope": settings.oidc_scopes,
            "code_challenge_method": "S256",
        }
        if settings.oidc_response_mode is ResponseMode.FORM_POST:
            fixed["response_mode"] = "form_post"
        self._fixed_query = urlencode(fixed)
        self.session_policy = sessions.SessionPolicy(
            idle=dt.timedelta(seconds=settings.session_idle_ttl),
            absolute=dt.timedelta(seconds=settings.session_absolute_ttl),
        )

    # --- §3.1.2.1 authentication request ---------------------------------------------------------
    async def start(self, return_to: str, *, client: str = "unknown") -> LoginStart:
        if not is_allowed(return_to, self.settings.allowed_return_urls):
            raise bad_return_to()
        metadata = await self.provider.metadata()
        state, nonce, verifier, binding = (random_token(32) for _ in range(4))
        now = utcnow()
        # Counted and stored in one statement (oidc/store.py). Expired login rows are removed by
        # the retention purge.
        await store.open_login(
            self._engine,
            self._limiter,
            client,
            self.settings.rate_limit_login,
            {
                "state_hash": self._state_hasher.digest(state),
                "browser_hash": self._browser_hasher.digest(binding),
                "nonce": nonce,
                "code_verifier": verifier,
                "return_to": return_to,
                "created_at": now,
                "expires_at": now + dt.timedelta(seconds=self.settings.oidc_login_ttl),
            },
        )
        # state, nonce and the S256 challenge are base64url (RFC 7636 §4.2): nothing in them needs
        # percent-encoding, so only the request's fixed parameters are encoded, once.
        dynamic = f"&state={state}&nonce={nonce}&code_challenge={create_s256_code_challenge(verifier)}"
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return LoginStart(
            authorization_url=metadata.authorization_endpoint + separator + self._fixed_query + dynamic,
            browser_binding=binding,
        )

    # --- §3.1.2.5 to §3.1.3.7 authentication response, token request, id_token ---------------------
    async def finish(
        self,
        params: Mapping[str, str],
        browser_binding: str | None,
        *,
        request_id: str | None,
        client: str = "unknown",
    ) -> LoginResult:
        state = params.get("state")
        if not state or not browser_binding or len(state) > 200 or len(browser_binding) > 200:
            raise login_expired()
        # Redeem the login exactly once: the row is deleted by the same statement that reads it,
        # and only for the browser that started it (RFC 6819 §4.4.1.8 CSRF, RFC 9700 §2.1).
        redeemed = await store.redeem_login(
            self._engine,
            self._limiter,
            client,
            self.settings.rate_limit_login,
            state_hash=self._state_hasher.digest(state),
            browser_hash=self._browser_hasher.digest(browser_binding),
        )
        if redeemed is None:
            raise login_expired()
        nonce, verifier, return_to = redeemed.nonce, redeemed.code_verifier, redeemed.return_to
        if redeemed.expires_at <= utcnow():
            raise login_expired(return_to)

        try:
            metadata = await self.provider.metadata()
        except UpstreamError:
            raise upstream_unavailable(return_to) from None
        # RFC 9207 §2.4: compare iss when present; require it when the provider says it sends it.
        iss = params.get("iss")
        if (iss is not None and iss != metadata.issuer) or (iss is None and metadata.iss_parameter_supported):
            raise PupilError(
                "iss_mismatch",
                title="Aanmelding geweigerd",
                message="Het antwoord kwam niet van de verwachte aanmeldingsdienst. Probeer opnieuw.",
                retry=True,
                return_to=return_to,
            )
        if "error" in params:
            # RFC 6749 §4.1.2.1: the provider refused or the pupil cancelled.
            raise PupilError(
                "provider_error",
                title="Aanmelden niet gelukt",
                message="De aanmelding bij LeerID werd afgebroken of geweigerd. Je kan opnieuw proberen.",
                retry=True,
                return_to=return_to,
            )
        code = params.get("code")
        if not code or len(code) > 2048:
            raise login_expired(return_to)

        try:
            tokens = await self._exchange(metadata.token_endpoint, code, verifier)
            id_token = await validate_id_token(
                tokens["id_token"],
                provider=self.provider,
                client_id=self.settings.oidc_client_id,
                nonce=nonce,
                algorithms=self.settings.oidc_id_token_algs,
                leeway=self.settings.oidc_clock_leeway,
            )
            _check_at_hash(id_token, tokens["access_token"])
            datastore = (
                str(self.settings.datastore_url)
                if self.settings.datastore_url
                else metadata.userinfo_endpoint
            )
            if datastore is None:
                raise UpstreamError("datastore", "no datastore URL and no userinfo_endpoint")
            profile = await self._attributes(datastore, tokens["access_token"], id_token.sub)
        except UpstreamError:
            raise upstream_unavailable(return_to) from None

        return await self._admit(profile, return_to, request_id)

    async def _exchange(self, token_endpoint: str, code: str, verifier: str) -> dict[str, str]:
        """RFC 6749 §4.1.3 token request with PKCE (RFC 7636 §4.5). Never retried: single use."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.settings.redirect_uri,
            "code_verifier": verifier,
        }
        headers = {"Accept": "application/json"}
        self._auth.apply(form, headers)
        status, body = await self._upstream.call(
            "token", "POST", token_endpoint, idempotent=False, data=form, headers=headers
        )
        if status != 200:
            raise UpstreamError("token", f"HTTP {status} {str(body.get('error', ''))[:40]}")
        access_token, id_token = body.get("access_token"), body.get("id_token")
        token_type = body.get("token_type")
        if not isinstance(access_token, str) or not access_token or len(access_token) > 8192:
            raise UpstreamError("token", "no access_token")
        if not _VSCHARS.fullmatch(access_token):
            # RFC 6749 §A.12: access-token = 1*VSCHAR. It goes into a header field to the datastore.
            raise UpstreamError("token", "access_token has characters outside VSCHAR")
        if not isinstance(id_token, str) or not id_token or len(id_token) > 16384:
            raise UpstreamError("token", "no id_token")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise UpstreamError("token", "token_type is not Bearer")
        return {"access_token": access_token, "id_token": id_token}

    async def _attributes(self, url: str, access_token: str, sub: str) -> LeerIdProfile:
        """The pupil's LeerID attributes from the datastore (default: ACM userinfo, OIDC Core §5.3)."""
        status, body = await self._upstream.call(
            "datastore",
            "GET",
            url,
            idempotent=True,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )
        if status != 200:
            raise UpstreamError("datastore", f"HTTP {status}")
        # OIDC Core §5.3.2: the userinfo sub MUST always be returned and MUST match the id_token's
        # (token substitution). A separate datastore API need not carry it; if it does, it must match.
        if ("sub" in body or self.settings.datastore_url is None) and body.get("sub") != sub:
            raise UpstreamError("datastore", "sub missing or different from the id_token's")
        return normalise(body, self.settings.attribute_mapping)

    async def _admit(self, profile: LeerIdProfile, return_to: str, request_id: str | None) -> LoginResult:
        """The access decision and, if admitted, reconciliation + session, in one transaction."""

        # Before the transaction: a list missing from memory is read on a connection of its own.
        partners = await self._partners.codes() if self._partners is not None else None

        async def admission(db: Db) -> tuple[LoginResult, int] | None:
            school = await access.partner_school_of(db, profile, partners)
            if school is None:
                # Protocol art. 3: no enrolment (any more), no access — and the pupil's open
                # sessions end. A first-time refused pupil leaves nothing behind.
                existing = await identity_service.find_identities(db, profile)
                for known in existing:
                    await sessions.revoke_for_identity(orm(db), known.id)
                await privacy.record(
                    db,
                    actor="system",
                    action=privacy.LOGIN_REFUSED,
                    purpose="toegangscontrole: geen inschrijving in een partnerschool",
                    sub=existing[0].sub if existing else None,
                    fields=["school"],
                    request_id=request_id,
                )
                return None
            index = profile.school_codes.index(school)
            received: dict[str, Any] = {
                "actor": "system",
                "action": privacy.LOGIN_RECEIVED,
                "purpose": "authenticatie van de leerling (protocol art. 2, 2°)",
                "fields": LeerIdProfile.FIELDS,
                "request_id": request_id,
            }
            session = sessions.new(self.session_hasher, self.session_policy)
            then = None
            if dialect_name(db) == "postgresql":  # written with the reconciliation (migration 0009)
                then = identity_service.LoginWrites(entry=privacy.pending(**received), session=session)
            outcome = await identity_service.reconcile(
                db,
                profile,
                school_code=school,
                school_name=profile.school_names[index] if index < len(profile.school_names) else None,
                then=then,
            )
            result = LoginResult(session_cookie=session.cookie, return_to=return_to, sid=session.sid)
            if outcome.appended is not None:
                # A returning pupil: the call that read the identity wrote the entry and the session.
                return result, 0
            await privacy.record(db, sub=outcome.identity.sub, **received)
            for merged in outcome.merged_subs:
                await privacy.record(
                    db,
                    actor="system",
                    action=privacy.IDENTITY_MERGED,
                    purpose="één leerling, één identiteit",
                    sub=merged,
                    request_id=request_id,
                )
            await sessions.insert_new(db, session, outcome.identity.id)
            return result, len(outcome.merged_subs)

        # On the driver first: a returning pupil's admission needs no Session (identity/service.py),
        # unless the partner list must be read in the transaction (an expanding IN: the Session's).
        if partners is None:
            admitted = await identity_service.in_retried_transaction(self._factory, admission)
        else:
            admitted = await identity_service.in_retried_transaction(self._factory, admission, on_driver=True)
        if admitted is None:
            raise access_refused(return_to)
        result, merges = admitted
        metrics.login_admitted(merged=merges)  # committed: one login, its merges
        return result

    def end_session_url(self, end_session_endpoint: str | None, state: str | None = None) -> str | None:
        """OIDC RP-Initiated Logout 1.0 §2: send the browser on to ACM's logout, if it has one."""
        if end_session_endpoint is None:
            return None
        params: dict[str, Any] = {"client_id": self.settings.oidc_client_id}
        if self.settings.oidc_post_logout_redirect_url is not None:
            params["post_logout_redirect_uri"] = str(self.settings.oidc_post_logout_redirect_url)
            if state:
                params["state"] = state
        separator = "&" if "?" in end_session_endpoint else "?"
        return end_session_endpoint + separator + urlencode(params)


def _check_at_hash(id_token: IdTokenClaims, access_token: str) -> None:
    """OIDC Core §3.1.3.8: when at_hash is present it must match (left half of the SHA-256)."""
    at_hash = id_token.claims.get("at_hash")
    if at_hash is None:
        return
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    if not isinstance(at_hash, str) or not hmac.compare_digest(b64url(digest[: len(digest) // 2]), at_hash):
        raise UpstreamError("id_token", "at_hash does not match the access token")
