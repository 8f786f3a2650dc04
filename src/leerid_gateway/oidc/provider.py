"""What we know about ACM: its discovery document and signing keys, cached and refreshed safely."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from leerid_gateway.kit.errors import UpstreamError
from leerid_gateway.oidc.resilience import Upstream

STALE_RETRY = 30.0


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of OpenID Connect Discovery 1.0 §3 we use."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    response_modes_supported: tuple[str, ...]
    iss_parameter_supported: bool

    @classmethod
    def parse(cls, doc: dict[str, Any], expected_issuer: str, *, require_https: bool) -> ProviderMetadata:
        issuer = doc.get("issuer")
        # Discovery §4.3: the issuer in the document MUST be identical to the one we asked.
        if issuer != expected_issuer:
            raise UpstreamError(
                "discovery", "issuer in the discovery document differs from the configured one"
            )

        def url(name: str, *, required: bool = True) -> str | None:
            value = doc.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str):
                raise UpstreamError("discovery", f"{name} missing or not a string")
            parts = urlsplit(value)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise UpstreamError("discovery", f"{name} is not an absolute URL")
            if require_https and parts.scheme != "https":
                raise UpstreamError("discovery", f"{name} is not https")
            return value

        modes = doc.get("response_modes_supported", ["query", "fragment"])
        return cls(
            issuer=issuer,
            authorization_endpoint=url("authorization_endpoint") or "",
            token_endpoint=url("token_endpoint") or "",
            jwks_uri=url("jwks_uri") or "",
            userinfo_endpoint=url("userinfo_endpoint", required=False),
            end_session_endpoint=url("end_session_endpoint", required=False),
            response_modes_supported=tuple(m for m in modes if isinstance(m, str)),
            iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
        )


class Provider:
    """Discovery and JWKS of one issuer, cached per process.

    Key rotation on the relying-party side (as Authlib's async OpenID client does): an unknown
    ``kid`` triggers one JWKS refetch, at most once per ``min_refresh`` seconds, so a flood of
    forged kids cannot turn us into a JWKS hammer.
    """

    def __init__(
        self,
        upstream: Upstream,
        issuer: str,
        *,
        discovery_ttl: float,
        min_refresh: float,
    ) -> None:
        self._upstream = upstream
        self.issuer = issuer
        self._discovery_ttl = discovery_ttl
        self._min_refresh = min_refresh
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = float("-inf")
        self._discovery_lock = asyncio.Lock()
        self._jwks_lock = asyncio.Lock()
        self.last_success: float | None = None

    async def metadata(self) -> ProviderMetadata:
        now = time.monotonic()
        if self._metadata is not None and now - self._metadata_at < self._discovery_ttl:
            return self._metadata
        async with self._discovery_lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < self._discovery_ttl:
                return self._metadata
            url = self.issuer + "/.well-known/openid-configuration"
            try:
                status, doc = await self._upstream.call("discovery", "GET", url, idempotent=True)
                if status != 200:
                    raise UpstreamError("discovery", f"HTTP {status}", status=status)
                metadata = ProviderMetadata.parse(
                    doc, self.issuer, require_https=urlsplit(self.issuer).scheme == "https"
                )
            except UpstreamError:
                if self._metadata is not None:
                    # Serve the stale document rather than fail every login while ACM hiccups, and
                    # ask again only after STALE_RETRY seconds, not on every login.
                    self._metadata_at = time.monotonic() - self._discovery_ttl + STALE_RETRY
                    return self._metadata
                raise
            self._metadata, self._metadata_at = metadata, time.monotonic()
            self.last_success = time.time()
            return metadata

    async def _fetch_keys(self) -> KeySet:
        metadata = await self.metadata()
        status, doc = await self._upstream.call("jwks", "GET", metadata.jwks_uri, idempotent=True)
        if status != 200:
            raise UpstreamError("jwks", f"HTTP {status}", status=status)
        try:
            keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise UpstreamError("jwks", "JWKS could not be parsed") from None
        self._keys, self._keys_at = keys, time.monotonic()
        return keys

    async def signing_keys(self, kid: str | None) -> KeySet:
        """The provider's keys, refetched once if ``kid`` is not among them (rate-limited)."""
        keys = self._keys
        if keys is None:
            async with self._jwks_lock:
                keys = self._keys or await self._fetch_keys()
        if kid is None or any(k.kid == kid for k in keys.keys):
            return keys
        async with self._jwks_lock:
            keys = self._keys or keys
            if any(k.kid == kid for k in keys.keys):
                return keys
            if time.monotonic() - self._keys_at >= self._min_refresh:
                keys = await self._fetch_keys()
        return keys
