"""/login, /callback and /logout: the browser's side of the OpenID Connect flow."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from leerid_gateway.deps import DbSession, GatewayDep, RequestId, client_address, get_gateway, get_request_id
from leerid_gateway.kit.first import FirstRoute
from leerid_gateway.kit.forms import query_values
from leerid_gateway.oidc.return_to import MAX_LENGTH, is_allowed
from leerid_gateway.oidc.service import bad_return_to
from leerid_gateway.sessions import cookies
from leerid_gateway.sessions import service as sessions

# An endpoint → the handler that serves it, given its query parameters (checked as its signature says).
QueryHandler = Callable[[Request, dict[str, str]], Awaitable[Response]]
_BY_HAND: dict[Callable[..., Any], QueryHandler] = {}


def served_by(handler: QueryHandler) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The decorated endpoint documents the route (its signature is the OpenAPI operation) and
    ``handler`` serves it: a pupil's two requests of every login, /login and GET /callback, pay no
    dependency solving and no per-parameter validation models (~0.3 ms of CPU per request on the
    session's machine, more than /login's own work; docs/performance.md)."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        _BY_HAND[endpoint] = handler
        return endpoint

    return mark


class _Route(APIRoute):
    """FastAPI's hook for a route's own request handling (``get_route_handler``: "Custom Request and
    APIRoute class" in FastAPI's documentation). A route marked ``served_by`` gets its query
    parameters checked against its endpoint's signature, read once here: every parameter a string,
    required or optional, with its ``max_length``; a violation is the same RequestValidationError
    FastAPI raises (the Dutch 400 page). Any other route is FastAPI's own."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = _BY_HAND.get(self.dependant.call) if self.dependant.call is not None else None
        if handler is None:
            return super().get_route_handler()
        served = handler
        limits: list[tuple[str, bool, int]] = []
        for field in self.dependant.query_params:
            if field.field_info.annotation not in (str, str | None):
                raise TypeError(f"{self.path}: {field.alias} is not a string parameter")
            # pydantic keeps max_length as an annotated_types.MaxLen in the field's metadata
            longest = [m.max_length for m in field.field_info.metadata if hasattr(m, "max_length")]
            if not longest:
                raise TypeError(f"{self.path}: {field.alias} has no max_length")
            limits.append((field.alias, field.field_info.is_required(), longest[0]))
        if self.dependant.body_params or self.dependant.header_params or self.dependant.cookie_params:
            raise TypeError(f"{self.path}: a by-hand route takes query parameters only")

        async def handle(request: Request) -> Response:
            query = query_values(request.scope["query_string"])
            params: dict[str, str] = {}
            for name, required, longest in limits:
                value = query.get(name)
                if value is None:
                    if required:
                        raise RequestValidationError([_invalid("missing", name, "Field required")])
                    continue
                if len(value) > longest:
                    too_long = f"String should have at most {longest} characters"
                    raise RequestValidationError([_invalid("string_too_long", name, too_long)])
                params[name] = value
            return await served(request, params)

        return handle


def _invalid(kind: str, name: str, message: str) -> dict[str, Any]:
    return {"type": kind, "loc": ("query", name), "msg": message}  # no "input": it may be a code


def served_first() -> list[FirstRoute]:
    """The by-hand routes, to be served in front of the application's router (kit/first.py):
    their handlers check their own query."""
    return [
        FirstRoute("GET", route, route.get_route_handler())
        for route in router.routes
        if isinstance(route, _Route) and route.endpoint in _BY_HAND and "GET" in (route.methods or ())
    ]


router = APIRouter(tags=["login"], route_class=_Route)

# What Starlette's RedirectResponse percent-quotes a location with, and what needs no quoting at all.
_LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;"
_NOTHING_TO_QUOTE = re.compile(r"[A-Za-z0-9_.~\-" + re.escape(_LOCATION_SAFE) + "]*")


def see_other(url: str) -> Response:
    """303 See Other (RFC 9110 §15.4.4), not to be stored (``Cache-Control: no-store``: it sets the
    login's cookies). The header fields of Starlette's ``RedirectResponse(url, 303)`` with that
    field added, the location quoted the same way, but without ``quote()`` on a URL that has
    nothing to quote (return_to is checked, ACM's authorization URL is built of base64url values).
    tests/oidc/test_by_hand_routes.py compares the two."""
    location = url if _NOTHING_TO_QUOTE.fullmatch(url) else quote(url, safe=_LOCATION_SAFE)
    return Response(status_code=303, headers={"location": location, "cache-control": "no-store"})


async def _login(request: Request, params: dict[str, str]) -> Response:
    gateway = await get_gateway(request)
    start = await gateway.relying_party.start(params["return_to"], client=client_address(request))
    response = see_other(start.authorization_url)
    cookies.set_login_binding(response, gateway.settings, start.browser_binding)
    return response


@router.get(
    "/login",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "To ACM's authorization endpoint"},
        400: {"description": "Dutch error page"},
    },
)
@served_by(_login)
async def login(
    request: Request, gateway: GatewayDep, return_to: Annotated[str, Query(max_length=MAX_LENGTH)]
) -> Response:
    """Start a login: 303 to ACM with PKCE, state and nonce bound to this browser."""
    return await _login(request, {"return_to": return_to})


async def _finish(
    request: Request, gateway: GatewayDep, params: dict[str, str], request_id: str | None
) -> Response:
    binding = request.cookies.get(cookies.login_cookie_name(gateway.settings))
    result = await gateway.relying_party.finish(
        params, binding, request_id=request_id, client=client_address(request)
    )
    response = see_other(result.return_to)
    cookies.clear_login_binding(response, gateway.settings)
    cookies.set_session(response, gateway.settings, result.session_cookie)
    return response


_CALLBACK_PARAMS = ("code", "state", "iss", "error", "error_description")
_CALLBACK_RESPONSES: dict[int | str, dict[str, str]] = {
    303: {"description": "Logged in: to return_to with the session cookie"},
    400: {"description": "Dutch error page"},
    403: {"description": "Dutch refusal page (no enrolment at a partner school)"},
    502: {"description": "Dutch page: ACM or the datastore failed; nothing was stored"},
}


async def _callback_query(request: Request, params: dict[str, str]) -> Response:
    return await _finish(request, await get_gateway(request), params, await get_request_id(request))


@router.get("/callback", status_code=303, response_class=RedirectResponse, responses=_CALLBACK_RESPONSES)
@served_by(_callback_query)
async def callback_query(
    request: Request,
    gateway: GatewayDep,
    request_id: RequestId,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    iss: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    """Authorization response, response_mode=query (RFC 6749 §4.1.2)."""
    values = (code, state, iss, error, error_description)
    params = {k: v for k, v in zip(_CALLBACK_PARAMS, values, strict=True) if v is not None}
    return await _finish(request, gateway, params, request_id)


@router.post("/callback", status_code=303, response_class=RedirectResponse, responses=_CALLBACK_RESPONSES)
async def callback_form_post(
    request: Request,
    gateway: GatewayDep,
    request_id: RequestId,
    code: Annotated[str | None, Form(max_length=2048)] = None,
    state: Annotated[str | None, Form(max_length=512)] = None,
    iss: Annotated[str | None, Form(max_length=512)] = None,
    error: Annotated[str | None, Form(max_length=256)] = None,
    error_description: Annotated[str | None, Form(max_length=1024)] = None,
) -> Response:
    """Authorization response, response_mode=form_post (OAuth 2.0 Form Post Response Mode §2)."""
    values = (code, state, iss, error, error_description)
    params = {k: v for k, v in zip(_CALLBACK_PARAMS, values, strict=True) if v is not None}
    return await _finish(request, gateway, params, request_id)


@router.post(
    "/logout",
    status_code=204,
    responses={
        204: {"description": "Session ended"},
        303: {"description": "On to return_to or ACM's logout"},
    },
)
async def logout(
    request: Request,
    gateway: GatewayDep,
    db: DbSession,
    return_to: Annotated[str | None, Query(max_length=MAX_LENGTH)] = None,
    end_provider_session: bool = False,
) -> Response:
    """End the gateway session (its tokens introspect inactive at once); optionally go on to ACM's
    end_session_endpoint (OIDC RP-Initiated Logout §2) or back to return_to."""
    cookies.check_origin(request, gateway.settings)
    if return_to is not None and not is_allowed(return_to, gateway.settings.allowed_return_urls):
        raise bad_return_to()
    target: str | None = None
    if end_provider_session:
        # Before touching the database: no lock is held while ACM answers.
        metadata = await gateway.provider.metadata()
        target = gateway.relying_party.end_session_url(metadata.end_session_endpoint)
    target = target or return_to
    cookie = request.cookies.get(cookies.session_cookie_name(gateway.settings))
    if cookie:
        active = await sessions.resolve(
            db, gateway.relying_party.session_hasher, gateway.relying_party.session_policy, cookie
        )
        if active is not None:
            await sessions.revoke(db, active.sid)
    response: Response = RedirectResponse(target, status_code=303) if target else Response(status_code=204)
    cookies.clear_session(response, gateway.settings)
    response.headers["Cache-Control"] = "no-store"
    return response
