"""oidc/router.py's by-hand routes (/login, GET /callback): the endpoint's signature documents the
route and sets its limits; the hand-written handler gets exactly the parameters that pass them."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from hypothesis import given
from hypothesis import strategies as st

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


LOCATIONS = [
    "https://eteacher.example/cursus?les=3&deel=2#oefening",
    "https://acm.example/authorize?client_id=x&state=AbC-_9&nonce=Zz&code_challenge=q_Q",
    "https://eteacher.example/pad met spatie",
    "https://eteacher.example/caf\u00e9?x=\u20ac",
    "https://eteacher.example/a%20b?x=%2F",
    'https://eteacher.example/"<>\\^`{|}',
    "",
]


def _as_starlette(url: str) -> list[tuple[bytes, bytes]]:
    from starlette.responses import RedirectResponse

    response = RedirectResponse(url, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return sorted(response.raw_headers)


@pytest.mark.parametrize("url", LOCATIONS)
def test_see_other_is_starlettes_redirect(url: str) -> None:
    response = oidc_router.see_other(url)
    assert (response.status_code, response.body) == (303, b"")
    assert sorted(response.raw_headers) == _as_starlette(url)


@given(st.text(max_size=40))
def test_any_location_is_quoted_as_starlette_quotes_it(url: str) -> None:
    assert sorted(oidc_router.see_other(url).raw_headers) == _as_starlette(url)
