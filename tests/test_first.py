"""kit/first.py: hot routes served in front of FastAPI's router, with everything around it kept."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from leerid_gateway.kit.first import FirstRoute, ServedFirst, plain
from leerid_gateway.oidc.router import _Route, served_by
from tests.support import offline_settings


class _Refused(Exception):
    pass


async def _where(request: Request, params: dict[str, str]) -> Response:
    if params.get("fail"):
        raise _Refused
    scope = request.scope
    return JSONResponse(
        {"route": scope["route"].path, "router": scope["router"] is request.app.router, **params}
    )


def _app() -> tuple[FastAPI, list[str]]:
    """An app like ours: a by-hand GET route, a plain POST route and a FastAPI one, an exception
    handler, ServedFirst in front of the router, and a note of every request that reached the router."""
    router = APIRouter(route_class=_Route)

    @router.get("/where")
    @served_by(_where)
    async def where(
        q: Annotated[str | None, Query(max_length=5)] = None,
        fail: Annotated[str | None, Query(max_length=1)] = None,
    ) -> Response:
        raise AssertionError("never called: _where serves the route")

    @router.post("/plain")
    async def plain_post(request: Request) -> Response:
        return JSONResponse({"route": request.scope["route"].path})

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

    by_path = {(r.path, tuple(r.methods)): r for r in router.routes if isinstance(r, _Route)}
    where_route, plain_route = by_path[("/where", ("GET",))], by_path[("/plain", ("POST",))]
    firsts = [FirstRoute("GET", where_route, where_route.get_route_handler()), plain(plain_route)]
    app.router.middleware_stack = ServedFirst(noted, app.router, firsts)
    return app, reached


async def test_routes_served_first_skip_the_router_and_keep_what_it_would_give() -> None:
    app, reached = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert (await http.get("/where?q=abc")).json() == {"route": "/where", "router": True, "q": "abc"}
        assert (await http.post("/plain")).json() == {"route": "/plain"}
        assert reached == []  # both served in front of the router
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
    """A server that strips the prefix sends path /where with root_path /gateway: the router
    still matches /where (Starlette's get_route_path), and so it is left to the router."""
    app, reached = _app()
    for path in ("/gateway/where", "/where"):
        scope = {
            "type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "root_path": "/gateway",
            "query_string": b"q=a", "headers": [], "http_version": "1.1", "scheme": "http",
            "server": ("t", 80), "client": ("c", 1), "asgi": {"version": "3.0"},
        }  # fmt: skip
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        await app(scope, receive, send)
        assert sent[0]["status"] == 200, path
    assert reached == ["GET /gateway/where", "GET /where"]


def test_only_a_route_that_needs_nothing_of_fastapi_is_served_plain() -> None:
    router = APIRouter()

    @router.post("/form")
    async def with_a_parameter(request: Request, token: str) -> Response:
        raise AssertionError

    @router.api_route("/both", methods=["GET", "POST"])
    async def two_methods(request: Request) -> Response:
        raise AssertionError

    @router.post("/sync")
    def not_a_coroutine(request: Request) -> Response:
        raise AssertionError

    @router.post("/headers")
    async def sets_response_headers(request: Request, response: Response) -> Response:
        raise AssertionError

    @router.post("/limited", max_body_size=10)
    async def with_a_body_limit(request: Request) -> Response:
        raise AssertionError

    for route in router.routes:
        with pytest.raises(TypeError, match="in front of the router"):
            plain(route)  # type: ignore[arg-type]


def test_the_gateway_serves_its_hot_routes_first() -> None:
    from leerid_gateway.app import create_app

    stack = create_app(offline_settings()).router.middleware_stack
    assert isinstance(stack, ServedFirst)
    assert stack.routes == {("GET", "/login"), ("GET", "/callback"), ("POST", "/introspect")}
