"""A sample eTeacher: the page a pupil starts from, and a backend that introspects tokens.

It uses the gateway exactly as the real eTeacher would: the browser goes to /login, the page calls
POST /token with the session cookie, and the backend asks POST /introspect with its own client
credentials. It is part of the demo only.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

PAGE = (Path(__file__).parent / "templates" / "eteacher.html").read_text(encoding="utf-8")


def create_eteacher_app(*, gateway_url: str, self_url: str, client_id: str, client_secret: str) -> Starlette:
    page = PAGE.replace("__GATEWAY__", json.dumps(gateway_url)).replace("__SELF__", json.dumps(self_url))
    http = httpx.AsyncClient(timeout=5.0)

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def api_introspect(request: Request) -> Response:
        body = await request.json()
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            return JSONResponse({"error": "token required"}, status_code=400)
        answer = await http.post(
            f"{gateway_url}/introspect", data={"token": token}, auth=(client_id, client_secret)
        )
        return JSONResponse(answer.json(), status_code=answer.status_code)

    return Starlette(routes=[Route("/", index), Route("/api/introspect", api_introspect, methods=["POST"])])
