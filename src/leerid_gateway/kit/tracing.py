"""OpenTelemetry tracing: a span per request, per call to ACM/the datastore and per SQL statement.

Off by default; on when the standard variables say so (``OTEL_TRACES_EXPORTER=otlp|console`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``, unless ``OTEL_SDK_DISABLED=true``; see ``Settings.tracing_exporter``).
The SDK reads its other ``OTEL_*`` variables itself (service name, sampler, headers). Nothing of
OpenTelemetry is imported while tracing is off, so the off path costs nothing.

Spans carry no personal data: query strings are removed from request spans (a /callback query holds
the authorization code) and SQL spans hold the statement without its parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from leerid_gateway.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

SERVICE_NAME = "leerid-gateway"
NOT_TRACED = "/healthz,/readyz,/metrics"


class Tracing:
    """The tracer provider of one app and the instrumentation it applied, undone on close."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._undo: list[Any] = []

    def instrument_app(self, app: FastAPI) -> None:
        """Before the app starts (it adds a middleware)."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=NOT_TRACED,
            server_request_hook=_drop_query,
            exclude_spans=["receive", "send"],
        )

    def instrument_resources(self, engine: AsyncEngine, http: httpx.AsyncClient) -> None:
        """In the lifespan, once the engine and the HTTP client exist."""
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        HTTPXClientInstrumentor.instrument_client(http, tracer_provider=self.provider)
        self._undo.append(lambda: HTTPXClientInstrumentor.uninstrument_client(http))
        sqlalchemy = SQLAlchemyInstrumentor()
        # skip_dep_check: the instrumentation declares SQLAlchemy < 2.1 but only uses the engine events,
        # which 2.1 keeps (tests/ops/test_tracing.py proves the spans arrive).
        sqlalchemy.instrument(engine=engine.sync_engine, tracer_provider=self.provider, skip_dep_check=True)
        self._undo.append(sqlalchemy.uninstrument)

    def close(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self.provider.shutdown()  # flushes the batch processor


def from_settings(settings: Settings, exporter: SpanExporter | None = None) -> Tracing | None:
    """The app's tracing, or None when it is off. ``exporter`` overrides the configured one (tests)."""
    name = settings.tracing_exporter
    if exporter is None and name is None:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name or "")))
    return Tracing(provider)


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout: the OTEL_EXPORTER_OTLP_* variables
    raise ValueError(f"unsupported OTEL_TRACES_EXPORTER {name!r} (otlp, console or none)")


def _drop_query(span: Any, scope: dict[str, Any]) -> None:
    """Server request hook: overwrite the attributes that carry the query string."""
    attributes = getattr(span, "attributes", None) or {}
    if "http.url" in attributes:
        parts = urlsplit(str(attributes["http.url"]))
        span.set_attribute("http.url", urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
    if "url.query" in attributes:
        span.set_attribute("url.query", "[removed]")
