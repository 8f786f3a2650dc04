"""oidc/router.py's by-hand routes (/login, GET /callback): the endpoint's signature documents the
route and sets its limits; the hand-written handler gets exactly the parameters that pass them."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from leerid_gateway.oidc import router as oidc_router
from leerid_gateway.oidc.router import _Route, served_by


async def _echo(_request: Request, params: dict[str, str]) -> Response:
    return JSONResponse(params)


def _app() -> FastAPI:
    from fastapi import APIRouter

    router = APIRouter(route_class=_Route)

    @router.get("/echo")
    @served_by(_echo)
    async def echo(
        must: Annotated[str, Query(max_length=5)], may: Annotated[str | None, Query(max_length=3)] = None
    ) -> Response:
        return await _echo(None, {})  # type: ignore[arg-type]  # never called: _echo serves the route

    app = FastAPI()
    app.include_router(router)
    return app


async def _get(app: FastAPI, query: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        return await http.get(f"/echo{query}")


async def test_the_signature_sets_the_limits_both_ways() -> None:
    app = _app()
    assert (await _get(app, "?must=12345")).json() == {"must": "12345"}  # optional and absent: left out
    assert (await _get(app, "?must=12345&may=abc")).json() == {"must": "12345", "may": "abc"}
    assert (await _get(app, "?must=&may=")).json() == {"must": "", "may": ""}
    for query in ("?must=123456", "?must=1&may=abcd", "", "?may=a"):
        answer = await _get(app, query)
        assert answer.status_code == 422, query  # FastAPI's own RequestValidationError answer
        assert "input" not in answer.text  # the value (an authorization code, say) is not echoed
    assert (await _get(app, "?must=a&must=b")).json() == {"must": "b"}  # the last, as FastAPI takes


def test_the_operation_is_documented_from_the_signature() -> None:
    parameters = _app().openapi()["paths"]["/echo"]["get"]["parameters"]
    limits = {p["name"]: (p["required"], p["schema"].get("maxLength")) for p in parameters}
    assert limits["must"] == (True, 5)


def test_a_parameter_it_cannot_check_is_refused_when_the_route_is_made() -> None:
    from fastapi import APIRouter

    router = APIRouter(route_class=_Route)
    with pytest.raises(TypeError, match="not a string"):

        @router.get("/n")
        @served_by(_echo)
        async def n(count: Annotated[int, Query()]) -> None: ...

    with pytest.raises(TypeError, match="max_length"):

        @router.get("/unbounded")
        @served_by(_echo)
        async def unbounded(text: Annotated[str, Query()]) -> None: ...


def test_login_and_the_query_callback_are_served_by_hand() -> None:
    """The pupil's two requests of every login; the form_post callback stays FastAPI's."""
    by_hand = {
        (route.path, method)
        for route in oidc_router.router.routes
        if isinstance(route, _Route) and route.endpoint in oidc_router._BY_HAND
        for method in route.methods
    }
    assert by_hand == {("/login", "GET"), ("/callback", "GET")}


# --- ByHandFirst: the by-hand routes served in front of FastAPI's router ---------------------------


class _Refused(Exception):
    pass


async def _where(request: Request, params: dict[str, str]) -> Response:
    if params.get("fail"):
        raise _Refused
    scope = request.scope
    return JSONResponse(
        {"route": scope["route"].path, "router": scope["router"] is request.app.router, **params}
    )


def _shortcut_app() -> tuple[FastAPI, list[str]]:
    """An app like ours: a by-hand GET route and a FastAPI one on one path, an exception handler,
    ByHandFirst in front of the router, and a note of every request that reached the router."""
    from fastapi import APIRouter

    router = APIRouter(route_class=_Route)

    @router.get("/where")
    @served_by(_where)
    async def where(
        q: Annotated[str | None, Query(max_length=5)] = None,
        fail: Annotated[str | None, Query(max_length=1)] = None,
    ) -> Response:
        raise AssertionError("never called: _where serves the route")

    @router.post("/where")
    async def where_post() -> dict[str, str]:
        return {"served": "by FastAPI"}

    app = FastAPI()
    app.include_router(router)

    @app.exception_handler(_Refused)
    async def refused(_request: Request, _exc: _Refused) -> Response:
        return JSONResponse({"refused": True}, status_code=403)

    reached: list[str] = []
    routed = app.router.middleware_stack

    async def noted(scope: Any, receive: Any, send: Any) -> None:
        reached.append(f"{scope['method']} {scope['path']}")
        await routed(scope, receive, send)

    app.router.middleware_stack = oidc_router.ByHandFirst(noted, app.router, router.routes)
    return app, reached


async def test_by_hand_routes_skip_the_router_and_keep_what_it_would_give() -> None:
    app, reached = _shortcut_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert (await http.get("/where?q=abc")).json() == {"route": "/where", "router": True, "q": "abc"}
        assert reached == []  # served in front of the router
        refused = await http.get("/where?fail=1")  # the app's exception handler, as for any route
        assert (refused.status_code, refused.json()) == (403, {"refused": True})
        too_long = await http.get("/where?q=123456")  # FastAPI's validation answer, as before
        assert too_long.status_code == 422 and "input" not in too_long.text
        assert reached == []
        assert (await http.post("/where")).json() == {"served": "by FastAPI"}
        assert (await http.head("/where")).status_code == 405  # FastAPI's: a GET route takes no HEAD
        assert (await http.get("/where/")).status_code in (307, 404)  # the router's own answers
    assert reached == ["POST /where", "HEAD /where", "GET /where/"]


async def test_under_a_root_path_the_router_decides() -> None:
    app, reached = _shortcut_app()
    transport = httpx.ASGITransport(app=app, root_path="/gateway")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        answer = await http.get("/gateway/where?q=a")
    assert answer.json() == {"route": "/where", "router": True, "q": "a"}
    assert reached == ["GET /gateway/where"]


def test_the_gateway_serves_login_and_the_query_callback_first() -> None:
    from leerid_gateway.app import create_app
    from leerid_gateway.settings import Settings

    settings = Settings(
        oidc_issuer="https://acm.example",
        oidc_client_id="x",
        oidc_client_secret="y" * 32,
        allowed_return_urls=["https://eteacher.example/"],
        secret_key="k" * 40,
    )
    stack = create_app(settings).router.middleware_stack
    assert isinstance(stack, oidc_router.ByHandFirst)
    assert set(stack._routes) == {"/login", "/callback"}
