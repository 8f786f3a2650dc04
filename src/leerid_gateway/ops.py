"""/healthz, /readyz and /metrics for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import QueuePool, text
from starlette.exceptions import HTTPException

from leerid_gateway.db import warm_idle
from leerid_gateway.deps import GatewayDep
from leerid_gateway.kit import metrics as metric_registry
from leerid_gateway.kit.errors import UpstreamError
from leerid_gateway.kit.lifecycle import DRAINING

router = APIRouter(tags=["operations"])


@router.get("/healthz", responses={200: {"description": "The process is alive"}})
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Checks nothing else, so a slow database never gets us killed."""
    return {"status": "ok"}


@router.get("/readyz", responses={200: {"description": "Ready"}, 503: {"description": "Not ready"}})
async def readyz(gateway: GatewayDep) -> JSONResponse:
    """Readiness: not shutting down, the database answers and ACM's discovery document is known."""
    if DRAINING.is_set():
        # SIGTERM received (serving.py): leave the load balancer's rotation, keep serving meanwhile.
        return JSONResponse({"status": "draining", "checks": {}, "info": {}}, status_code=503)
    checks: dict[str, str] = {}
    pool = gateway.engine.pool
    if isinstance(pool, QueuePool) and pool.checkedout() >= pool.size() and gateway.live.listening:
        # Every pooled connection is checked out (the pool makes no extra ones, db.py; the few the
        # login keeps warm for its next statement are out too, db._Warm, and no probe gets them):
        # waiting for one would measure the queue, not the database, and take a busy replica out
        # of rotation. The listener's own connection, outside the pool and probed every 5 s
        # (tokens/live.py), answers.
        checks["database"] = "ok"
    else:
        try:
            async with asyncio.timeout(2):
                async with gateway.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception:
            checks["database"] = "unreachable"
    try:
        async with asyncio.timeout(3):
            await gateway.provider.metadata()
        failing = gateway.upstream.unreachable_for(("discovery", "jwks", "token", "datastore"))
        checks["provider"] = "ok" if failing < gateway.settings.upstream_unready_after else "unreachable"
    except (UpstreamError, TimeoutError):
        checks["provider"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    # Informational: without the listener introspection is exact but asks the database every time.
    info = {"revocation_listener": "listening" if gateway.live.listening else "off"}
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks, "info": info},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, gateway: GatewayDep) -> Response:
    """Prometheus text format. Off unless LEERID_METRICS_ENABLED; then a bearer token when one is set
    (required in production). Not in the OpenAPI document: it is for the operator's Prometheus only."""
    settings = gateway.settings
    if not settings.metrics_enabled:
        raise HTTPException(404, "Not Found")
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            # RFC 6750 §3: say how to authenticate (the shared error handler would drop the header).
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    body = metric_registry.render(gateway.engine.pool, warm_idle(gateway.engine))
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
