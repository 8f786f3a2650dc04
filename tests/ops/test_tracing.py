"""OpenTelemetry: off by default (nothing imported), and when on a span per request, per call to ACM
and per SQL statement, in one trace, without the authorization code (issue 7)."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from leerid_gateway.app import create_app
from leerid_gateway.settings import Settings
from tests.e2e.conftest import RETURN_TO, World
from tests.ops.support import settings_for_public_url
from tests.support.browser import Browser
from tests.support.servers import ServerThread, bind_loopback


def _wait_for_background_start(world: World, url: str) -> None:
    """On PostgreSQL the revocation listener loads the revoked token ids once it is connected: a
    SQL span of its own trace, which must not fall inside the window this test inspects."""
    if not world.settings.database_url.startswith("postgresql"):
        return
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/readyz").json()["info"]["revocation_listener"] != "listening":
        assert time.monotonic() < deadline, "the revocation listener did not start"
        time.sleep(0.05)
    time.sleep(0.3)  # the load that follows LISTEN


async def test_a_login_is_one_trace_of_request_upstream_and_sql_spans(world: World) -> None:
    exporter = InMemorySpanExporter()
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    traced = ServerThread(create_app(settings_for_public_url(world, url), span_exporter=exporter), sock)
    browser = Browser()
    try:
        traced.start()
        _wait_for_background_start(world, url)
        # Lotte has logged in before: this callback is a returning pupil's.
        assert browser.login(url, "lotte", RETURN_TO).status_code == 303
        start = browser.start_login(url, RETURN_TO)
        hop = browser.choose_pupil(start.headers["location"], "lotte")
        assert hop.url.startswith(f"{url}/callback?code=")
        code = hop.url.split("code=")[1].split("&")[0]
        exporter.clear()  # from here: the callback only
        assert browser.follow(hop).status_code == 303
    finally:
        browser.close()
        traced.stop()

    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [s.name for s in server] == ["GET /callback"]
    trace_id = server[0].context.trace_id
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    http_calls = [s for s in clients if s.attributes and "http.request.method" in s.attributes]
    http_calls += [s for s in clients if s.attributes and "http.method" in s.attributes]
    sql = [s for s in clients if s.attributes and "db.system" in s.attributes]
    assert len(http_calls) >= 2, [s.name for s in clients]  # token + userinfo (JWKS may be cached)
    assert sql, "no SQL spans"
    # Every statement, the login's driver-level ones too (db.fetchrow_autocommit defers to
    # SQLAlchemy while the instrumentation listens): the redeem-and-count CTE is there.
    statements = [str((s.attributes or {}).get("db.statement", "")) for s in sql]
    assert any("DELETE FROM login_transactions" in statement for statement in statements), statements
    # A returning pupil on PostgreSQL: the reconciliation's one call writes the session and the entry
    # (migration 0009), here through SQLAlchemy's own execution and its bind processing.
    session_inserts = [s for s in statements if "INSERT INTO sessions" in s]
    if world.settings.database_url.startswith("postgresql"):
        assert any("leerid_login_admission" in statement for statement in statements), statements
        assert session_inserts == []
    else:
        assert len(session_inserts) == 1
    assert all(s.context.trace_id == trace_id for s in http_calls + sql)
    # The query string (the authorization code) is in no attribute of any span.
    for span in spans:
        for value in (span.attributes or {}).values():
            assert code not in str(value), span.name


def test_tracing_is_off_by_default_and_imports_nothing() -> None:
    program = """
import sys
from leerid_gateway.app import create_app
from leerid_gateway.settings import Settings
app = create_app(Settings(oidc_issuer="https://acm.example", oidc_client_id="x",
    oidc_client_secret="s" * 20, allowed_return_urls=["https://e.example/"], secret_key="k" * 40))
heavy = ("opentelemetry.sdk", "opentelemetry.instrumentation", "opentelemetry.exporter")
loaded = sorted(m for m in sys.modules if m.startswith(heavy))
print(loaded)
"""
    env = {"PATH": "/usr/bin:/bin"}  # no OTEL_* variables
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_standard_variables_decide() -> None:
    base = {
        "oidc_issuer": "https://acm.example",
        "oidc_client_id": "x",
        "oidc_client_secret": "s" * 20,
        "allowed_return_urls": ["https://e.example/"],
        "secret_key": "k" * 40,
    }
    assert Settings(**base).tracing_exporter is None
    assert Settings(**base, otel_traces_exporter="console").tracing_exporter == "console"
    assert Settings(**base, otel_exporter_otlp_endpoint="http://collector:4318").tracing_exporter == "otlp"
    assert (
        Settings(**base, otel_traces_exporter="none", otel_exporter_otlp_endpoint="http://c").tracing_exporter
        is None
    )
    assert Settings(**base, otel_traces_exporter="otlp", otel_sdk_disabled=True).tracing_exporter is None
