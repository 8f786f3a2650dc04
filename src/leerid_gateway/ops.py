"""/healthz and /readyz for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from leerid_gateway.deps import GatewayDep
from leerid_gateway.kit.errors import UpstreamError

router = APIRouter(tags=["operations"])


@router.get("/healthz", responses={200: {"description": "The process is alive"}})
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Checks nothing else, so a slow database never gets us killed."""
    return {"status": "ok"}


@router.get("/readyz", responses={200: {"description": "Ready"}, 503: {"description": "Not ready"}})
async def readyz(gateway: GatewayDep) -> JSONResponse:
    """Readiness: the database answers and ACM's discovery document is known."""
    checks: dict[str, str] = {}
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
