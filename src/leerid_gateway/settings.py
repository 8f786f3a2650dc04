"""One settings object for the whole gateway: environment variables with the ``LEERID_`` prefix.

Validated once at start-up (``Settings()`` raises with a readable reason); everything else receives
the instance by injection and never reads ``os.environ`` itself.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The LeerID attribute names as DOV's datastore / ACM userinfo sends them. An operator can override any
# of them with LEERID_ATTRIBUTE_MAPPING='{"account_uuid": "other_name", ...}' (issue 2, §3).
DEFAULT_ATTRIBUTE_MAPPING: dict[str, str] = {
    "account_uuid": "ov_account_uuid",
    "leer_id_uuid": "ov_leerid_uuid",
    "history_account_uuids": "ov_historiek_account_uuid",
    "given_name": "given_name",
    "family_name": "family_name",
    "school_code": "ov_orgcode",
    "school_name": "ov_orgnaam",
}

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "demo", "demo-secret", "password"}


class ClientAuthMethod(StrEnum):
    """OIDC Core §9 client authentication methods that ACM accepts."""

    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 (a method name)
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105 (a method name)
    PRIVATE_KEY_JWT = "private_key_jwt"


class ResponseMode(StrEnum):
    """OAuth 2.0 Multiple Response Types §2.1 (query) and Form Post Response Mode §2 (form_post)."""

    QUERY = "query"
    FORM_POST = "form_post"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of the gateway. ``docs/operations.md`` lists them (generated from this class)."""

    model_config = SettingsConfigDict(
        env_prefix="LEERID_", env_file=None, extra="ignore", frozen=True, validate_default=True
    )

    # --- deployment -----------------------------------------------------------------------------
    environment: Literal["production", "development"] = Field(
        "production",
        description="'development' relaxes the checks on placeholder secrets and plain http. "
        "The demo sets it; never use it in production.",
    )
    database_url: str = Field(
        "sqlite+aiosqlite:///./leerid-gateway.db",
        description="SQLAlchemy async URL: postgresql+asyncpg://… in production, sqlite+aiosqlite:///… "
        "for the embedded default.",
    )
    database_pool_size: int = Field(
        20,
        ge=2,  # the daily retention purge holds one for its lock while it works on another
        le=200,
        description="Connections per process, at most; each is kept once made (PostgreSQL).",
    )
    public_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8000"),
        description="The gateway's own external URL: token issuer, callback base, cookie security.",
    )

    # --- OpenID Connect toward ACM --------------------------------------------------------------
    oidc_issuer: AnyHttpUrl = Field(description="ACM issuer; endpoints come from its discovery document.")
    oidc_client_id: str = Field(min_length=1, description="The client id ACM registered for us.")
    oidc_client_secret: SecretStr | None = Field(
        None, description="For client_secret_basic / client_secret_post."
    )
    oidc_client_auth: ClientAuthMethod = Field(
        ClientAuthMethod.CLIENT_SECRET_BASIC, description="Token endpoint client authentication."
    )
    oidc_private_key_file: Path | None = Field(
        None, description="PEM private key (RSA or EC) for private_key_jwt."
    )
    oidc_private_key_alg: Literal["RS256", "ES256"] = Field(
        "RS256", description="Alg of the client assertion."
    )
    oidc_assertion_audience: str | None = Field(
        None,
        description="`aud` of the private_key_jwt assertion. ACM wants the issuer, which is the default; "
        "set the token endpoint URL for providers that follow RFC 7523 §3 literally.",
    )
    oidc_scopes: str = Field("openid profile ov_leerling", description="Space-separated scopes.")
    oidc_response_mode: ResponseMode = Field(ResponseMode.QUERY, description="query or form_post.")
    oidc_id_token_algs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256"],
        description="Comma-separated id_token algorithms we accept (asymmetric only).",
    )
    oidc_clock_leeway: int = Field(60, ge=0, le=300, description="Seconds of clock skew allowed on exp/iat.")
    oidc_discovery_ttl: int = Field(3600, ge=10, description="Seconds the discovery document is cached.")
    oidc_jwks_min_refresh_interval: int = Field(
        30, ge=0, description="At most one JWKS refetch for an unknown kid per this many seconds."
    )
    oidc_http_timeout: float = Field(5.0, gt=0, le=60, description="Seconds for each call to ACM/datastore.")
    upstream_retries: int = Field(
        2, ge=0, le=5, description="Retries of idempotent calls to ACM/datastore (never the code exchange)."
    )
    upstream_breaker_threshold: int = Field(
        5, ge=1, le=100, description="Consecutive failures after which calls to that endpoint pause."
    )
    upstream_breaker_cooldown: float = Field(
        15.0, gt=0, le=600, description="Seconds an open circuit breaker waits before one trial call."
    )
    upstream_unready_after: float = Field(
        30.0, gt=0, le=3600, description="/readyz turns 503 once ACM has failed for this many seconds."
    )
    rate_limit_login: int = Field(
        600,
        ge=0,
        description="/login and /callback requests per minute per client address (0: off); "
        "generous because a class logs in from one school address at once.",
    )
    rate_limit_client_auth_failures: int = Field(
        20,
        ge=0,
        description="Failed internal-client authentications per minute per address and per client_id.",
    )
    rate_limit_admin: int = Field(120, ge=0, description="Staff API requests per minute per address.")
    oidc_login_ttl: int = Field(600, ge=60, le=3600, description="Seconds a started login may take.")
    oidc_post_logout_redirect_url: AnyHttpUrl | None = Field(
        None, description="Where ACM sends the browser after logout (registered with ACM)."
    )

    # --- LeerID attributes ----------------------------------------------------------------------
    datastore_url: AnyHttpUrl | None = Field(
        None, description="SSO datastore API; default: the provider's userinfo_endpoint."
    )
    attribute_mapping: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_ATTRIBUTE_MAPPING),
        description="JSON object overriding the datastore's attribute names.",
    )

    # --- where pupils may be sent back ----------------------------------------------------------
    allowed_return_urls: Annotated[list[str], NoDecode] = Field(
        description="Comma-separated URL prefixes that return_to must start with (after parsing)."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed to call /token and /me with the session cookie; default: the "
        "origins of allowed_return_urls.",
    )

    # --- sessions and internal tokens -----------------------------------------------------------
    session_idle_ttl: int = Field(3600, ge=60, description="Seconds of inactivity that end a session.")
    session_absolute_ttl: int = Field(8 * 3600, ge=60, description="Seconds after which a session ends.")
    token_audience: str = Field("eteacher", min_length=1, description="`aud` of issued tokens.")
    token_client_id: str = Field(
        "eteacher-web", min_length=1, description="`client_id` claim of issued tokens (RFC 9068 §2.2)."
    )
    access_token_ttl: int = Field(300, ge=30, le=3600, description="Lifetime of issued tokens (s).")
    token_signing_alg: Literal["ES256", "RS256", "EdDSA"] = Field("ES256", description="Token signing alg.")
    jwks_max_age: int = Field(
        300, ge=1, le=86400, description="Seconds verifiers may cache our JWKS (Cache-Control max-age)."
    )
    keys_refresh_interval: float = Field(
        30.0, gt=0, le=600, description="Seconds between reloads of the signing keys by each replica."
    )
    introspection_cache_size: int = Field(
        20000, ge=0, le=1_000_000, description="Verified tokens kept in memory per process (0: none)."
    )
    secret_key: SecretStr = Field(
        description="Server secret (≥ 32 chars): keys the HMAC of session and client secrets and "
        "encrypts signing keys at rest."
    )

    # --- privacy and staff (issue 4) ------------------------------------------------------------
    retention_days: int = Field(
        1096,
        ge=1,
        le=36500,
        description="Days after its last login that an identity is deleted with everything attached "
        "(protocol art. 3: three years).",
    )
    privacy_log_retention_days: int = Field(
        1826, ge=1, le=36500, description="Days a privacy-log entry is kept (protocol art. 6)."
    )
    purge_enabled: bool = Field(
        True, description="Run the retention purge in the service (`leerid-gateway purge` works either way)."
    )
    purge_interval: float = Field(
        86400.0,
        ge=1,
        le=7 * 86400,
        description="Seconds between the service's retention purges (the first comes at most 10 minutes "
        "after start-up).",
    )
    purge_batch_size: int = Field(
        500, ge=1, le=10000, description="Rows per purge transaction (each batch is short)."
    )

    # --- operations (docs/operations.md) ----------------------------------------------------------
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="Comma-separated IPs/CIDRs of the load balancers whose X-Forwarded-For/-Proto `serve` "
        "trusts (uvicorn's forwarded_allow_ips); '*' trusts every peer.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Level of the JSON log lines on stdout (one line per request at info)."
    )
    metrics_enabled: bool = Field(False, description="Serve Prometheus metrics on /metrics.")
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token /metrics requires (≥ 16 chars); required in production when metrics "
        "are enabled.",
    )
    shutdown_drain_seconds: float = Field(
        5.0,
        ge=0,
        le=120,
        description="After SIGTERM, /readyz answers 503 for this long while requests are still served, "
        "so the load balancer stops sending new ones before the server closes.",
    )
    shutdown_timeout: int = Field(
        20, ge=1, le=300, description="Seconds in-flight requests get to finish once the server closes."
    )
    otel_traces_exporter: str | None = Field(
        None,
        validation_alias=AliasChoices("OTEL_TRACES_EXPORTER", "otel_traces_exporter"),
        description="OpenTelemetry: 'otlp' or 'console' turns tracing on; unset or 'none' leaves it off.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "otel_exporter_otlp_endpoint"),
        description="OpenTelemetry collector URL (OTLP/HTTP); setting it alone turns tracing on with otlp.",
    )
    otel_sdk_disabled: bool = Field(
        False,
        validation_alias=AliasChoices("OTEL_SDK_DISABLED", "otel_sdk_disabled"),
        description="OpenTelemetry's master switch: true keeps tracing off whatever else is set.",
    )

    @field_validator(
        "oidc_id_token_algs", "allowed_return_urls", "cors_origins", "trusted_proxies", mode="before"
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("attribute_mapping", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON object ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")
        unknown = set(value) - set(DEFAULT_ATTRIBUTE_MAPPING)
        if unknown:
            raise ValueError(
                f"unknown attributes {sorted(unknown)}; known: {sorted(DEFAULT_ATTRIBUTE_MAPPING)}"
            )
        return {**DEFAULT_ATTRIBUTE_MAPPING, **value}

    @field_validator("otel_traces_exporter")
    @classmethod
    def _traces_exporter(cls, value: str | None) -> str | None:
        if value is not None and value.strip().lower() not in ("", "none", "otlp", "console"):
            raise ValueError(f"OTEL_TRACES_EXPORTER {value!r} is not supported (otlp, console or none)")
        return value

    @field_validator("oidc_id_token_algs")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        """OIDC Core §10.1 / RFC 8725 §3.1: never `none`, never HMAC with a public key."""
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
        bad = [alg for alg in value if alg not in allowed]
        if bad or not value:
            raise ValueError(f"only asymmetric algorithms are allowed, got {bad or value}")
        return value

    @field_validator("allowed_return_urls")
    @classmethod
    def _return_urls(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one URL prefix is required")
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
                raise ValueError(f"{url!r} is not an absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        prod = self.environment == "production"
        if len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("LEERID_SECRET_KEY must be at least 32 characters")
        if prod and self.secret_key.get_secret_value().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("LEERID_SECRET_KEY is a placeholder")
        if self.oidc_client_auth is ClientAuthMethod.PRIVATE_KEY_JWT:
            if self.oidc_private_key_file is None:
                raise ValueError("LEERID_OIDC_PRIVATE_KEY_FILE is required for private_key_jwt")
            if not self.oidc_private_key_file.is_file():
                raise ValueError(f"LEERID_OIDC_PRIVATE_KEY_FILE {self.oidc_private_key_file} is not a file")
        else:
            secret = self.oidc_client_secret.get_secret_value() if self.oidc_client_secret else ""
            if not secret:
                raise ValueError(f"LEERID_OIDC_CLIENT_SECRET is required for {self.oidc_client_auth}")
            if prod and secret.lower() in PLACEHOLDER_SECRETS:
                raise ValueError("LEERID_OIDC_CLIENT_SECRET is a placeholder")
        if (
            prod
            and self.public_url.scheme != "https"
            and self.public_url.host not in ("127.0.0.1", "localhost")
        ):
            raise ValueError("LEERID_PUBLIC_URL must be https in production")
        if self.session_idle_ttl > self.session_absolute_ttl:
            raise ValueError("LEERID_SESSION_IDLE_TTL cannot exceed LEERID_SESSION_ABSOLUTE_TTL")
        token = self.metrics_token.get_secret_value() if self.metrics_token else ""
        if token and len(token) < 16:
            raise ValueError("LEERID_METRICS_TOKEN must be at least 16 characters")
        if prod and self.metrics_enabled and not token:
            raise ValueError("LEERID_METRICS_ENABLED in production needs LEERID_METRICS_TOKEN")
        return self

    # --- derived values -------------------------------------------------------------------------
    @cached_property
    def issuer(self) -> str:
        """Our own issuer identifier (RFC 8414 §2): the public URL without a trailing slash."""
        return str(self.public_url).rstrip("/")

    @cached_property
    def provider_issuer(self) -> str:
        """ACM's issuer exactly as configured; OIDC Discovery §4.3 compares it character for character."""
        return str(self.oidc_issuer).rstrip("/")

    @cached_property
    def redirect_uri(self) -> str:
        return f"{self.issuer}/callback"

    @cached_property
    def tracing_exporter(self) -> str | None:
        """The OpenTelemetry span exporter to use, or None when tracing is off (the default)."""
        if self.otel_sdk_disabled:
            return None
        exporter = (self.otel_traces_exporter or "").strip().lower()
        if not exporter:
            exporter = "otlp" if self.otel_exporter_otlp_endpoint else "none"
        return None if exporter == "none" else exporter

    @cached_property
    def secure_cookies(self) -> bool:
        return self.public_url.scheme == "https"

    @cached_property
    def effective_cors_origins(self) -> list[str]:
        if self.cors_origins:
            return self.cors_origins
        origins = []
        for url in self.allowed_return_urls:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}".lower()
            if origin not in origins:
                origins.append(origin)
        return origins


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning a validation error into one line per problem (for start-up)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from None


class SettingsError(Exception):
    """Start-up refused: the message is meant for the operator, one line per problem."""


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = "_".join(str(part) for part in err["loc"]).upper()
        name = f"LEERID_{loc}" if loc else "settings"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {msg}")
    return "invalid configuration: " + "; ".join(lines)
