"""create_app(settings): wiring only. The lifespan opens and closes the process's resources."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from leerid_gateway import http_errors, ops
from leerid_gateway.access.cache import PartnerSchools
from leerid_gateway.admin import router as admin_router
from leerid_gateway.db import create_engine, create_session_factory, release_warm
from leerid_gateway.gateway import Gateway
from leerid_gateway.identity import router as identity_router
from leerid_gateway.kit import tracing
from leerid_gateway.kit.crypto import Hasher, Sealer
from leerid_gateway.kit.edge import EdgeMiddleware
from leerid_gateway.kit.errors import UpstreamError
from leerid_gateway.kit.first import serve_first
from leerid_gateway.kit.openapi import customise as customise_openapi
from leerid_gateway.kit.ratelimit import RateLimiter
from leerid_gateway.oidc import router as oidc_router
from leerid_gateway.oidc.provider import Provider
from leerid_gateway.oidc.resilience import Upstream
from leerid_gateway.oidc.service import RelyingParty
from leerid_gateway.oidc.upstream import new_client as upstream_http_client
from leerid_gateway.privacy.retention import RetentionScheduler
from leerid_gateway.sessions import router as sessions_router
from leerid_gateway.settings import Settings
from leerid_gateway.tokens import router as tokens_router
from leerid_gateway.tokens.introspection import Introspector
from leerid_gateway.tokens.keyring import KeyRing
from leerid_gateway.tokens.live import LiveState
from leerid_gateway.tokens.service import TokenPolicy

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("leerid_gateway")

VERSION = "0.1.0"


def build_gateway(settings: Settings) -> Gateway:
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    factory = create_session_factory(engine)
    http = upstream_http_client(timeout=settings.oidc_http_timeout, user_agent=f"leerid-gateway/{VERSION}")
    upstream = Upstream(
        http,
        retries=settings.upstream_retries,
        threshold=settings.upstream_breaker_threshold,
        cooldown=settings.upstream_breaker_cooldown,
        deadline=settings.oidc_http_timeout * 2,
    )
    provider = Provider(
        upstream,
        settings.provider_issuer,
        discovery_ttl=settings.oidc_discovery_ttl,
        min_refresh=settings.oidc_jwks_min_refresh_interval,
    )
    secret = settings.secret_key.get_secret_value()
    token_policy = TokenPolicy(settings.issuer, settings.token_audience, settings.access_token_ttl)
    partners = PartnerSchools(engine)
    live = LiveState(
        factory, settings.database_url, max_entries=settings.introspection_cache_size, subscribers=[partners]
    )
    limiter = RateLimiter(factory)
    return Gateway(
        settings=settings,
        engine=engine,
        session_factory=factory,
        http=http,
        provider=provider,
        upstream=upstream,
        relying_party=RelyingParty(settings, provider, upstream, factory, limiter, partners),
        keyring=KeyRing(
            factory,
            Sealer(secret, "signing-keys"),
            settings.token_signing_alg,
            max_token_ttl=settings.access_token_ttl,
            refresh_every=settings.keys_refresh_interval,
        ),
        token_policy=token_policy,
        client_hasher=Hasher(secret, "client-secret"),
        live=live,
        limiter=limiter,
        introspector=Introspector(
            live,
            token_policy,
            idle_ttl=settings.session_idle_ttl,
            cache_size=settings.introspection_cache_size,
        ),
    )


def create_app(settings: Settings, *, span_exporter: SpanExporter | None = None) -> FastAPI:
    """``span_exporter`` turns tracing on with that exporter (tests); otherwise OTEL_* decide."""
    traces = tracing.from_settings(settings, span_exporter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = build_gateway(settings)
        app.state.gateway = gateway
        retention = RetentionScheduler(gateway.engine, gateway.session_factory, settings)
        app.state.retention = retention
        if traces is not None:
            traces.instrument_resources(gateway.engine, gateway.http)
        try:
            await gateway.keyring.start()
            await gateway.live.start()
            await retention.start()
            try:
                await gateway.provider.metadata()
            except UpstreamError as exc:
                # Not fatal: /readyz reports it and logins retry discovery.
                log.warning("provider discovery failed at start-up: %s", exc.kind)
            yield
        finally:
            await retention.stop()
            await gateway.live.stop()
            await gateway.keyring.stop()
            await gateway.http.aclose()
            release_warm(gateway.engine)  # back to the pool, so that dispose() closes them cleanly
            await gateway.engine.dispose()
            if traces is not None:
                traces.close()

    app = FastAPI(
        title="leerid-gateway",
        version=VERSION,
        summary="LeerID login for eTeacher: OIDC relying party toward ACM, one identity per pupil, "
        "short-lived internal tokens.",
        lifespan=lifespan,
        redoc_url=None,
        # FastAPI's own OpenTelemetry (new in 0.165) stays off: tracing is ours (kit/tracing.py, off
        # by default), metrics are Prometheus (kit/metrics.py), and its "logs" would send exception
        # messages and stack traces (which may quote request data) to a log exporter. It also asked
        # the tracer provider on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.include_router(oidc_router.router)
    app.include_router(tokens_router.router)
    app.include_router(sessions_router.router)
    app.include_router(identity_router.router)
    app.include_router(ops.router)
    app.include_router(admin_router.router)
    serve_first(app, [*oidc_router.served_first(), *tokens_router.served_first()])
    http_errors.install(app, settings)
    customise_openapi(app)
    app.add_middleware(
        EdgeMiddleware,
        hsts=settings.secure_cookies,
        page_form_targets=settings.provider_issuer,
        cors_origins=settings.effective_cors_origins,
    )
    if traces is not None:
        traces.instrument_app(app)
    return app
