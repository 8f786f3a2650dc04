"""Hot routes served in front of FastAPI's router: a pupil's two login requests and introspection.

Everything around the router stays as it is for every route: the middleware (request id, security
headers, access log, CORS) and FastAPI's exception handlers (the Dutch pages, RFC-shaped errors).
What a route served first skips is FastAPI's matching through the included routers, the
per-request exit stacks of dependencies and its inner mapping of exceptions, which the exception
middleware outside makes the same way: ~0.15 M instructions per request (6 % of a login;
docs/performance.md, session 8). Only routes that need none of it qualify: no dependencies, no
parameters FastAPI would read (oidc/router.py's by-hand routes check their own query; /introspect
reads its form by hand), a Response returned as it is.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class FirstRoute:
    method: str
    route: APIRoute
    handler: Handler


def plain(route: APIRoute) -> FirstRoute:
    """A route whose endpoint is a coroutine that takes the request alone and returns a Response,
    with no body limit of its own: served by calling it. Its router must be included as it is (no
    prefix, no dependencies of the inclusion): ``ServedFirst`` serves the route's own path."""
    dependant = route.dependant
    if (
        not inspect.iscoroutinefunction(route.endpoint)
        or dependant.response_param_name is not None
        or dependant.background_tasks_param_name is not None
        or getattr(route, "max_body_size", None) is not None  # the router would enforce it
        or dependant.dependencies
        or dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.request_param_name is None
        or route.methods is None
        or len(route.methods) != 1
    ):
        raise TypeError(f"{route.path}: not a route that can be served in front of the router")
    endpoint: Handler = route.endpoint
    return FirstRoute(next(iter(route.methods)), route, endpoint)


class ServedFirst:
    """ASGI, in front of the application's router: a request for one of ``routes`` (by method and
    exact path) goes straight to its handler, with what the router's match would have put in the
    scope (``route``, ``endpoint``, ``path_params``, ``router``: the access log's route template,
    ``request.app``). Any other request, and any request under a ``root_path``, goes on to the
    router."""

    def __init__(self, router_app: ASGIApp, app_router: object, routes: Iterable[FirstRoute]) -> None:
        self._router_app = router_app
        self._app_router = app_router
        self._routes = {(first.method, first.route.path): first for first in routes}

    @property
    def routes(self) -> set[tuple[str, str]]:
        return set(self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            first = self._routes.get((scope["method"], scope["path"]))
            if first is not None:
                scope.setdefault("router", self._app_router)
                scope["route"] = first.route
                scope["endpoint"] = first.route.endpoint
                scope["path_params"] = {}
                response = await first.handler(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self._router_app(scope, receive, send)


def serve_first(app: FastAPI, routes: Iterable[FirstRoute]) -> None:
    """Put ``ServedFirst`` in front of ``app``'s router (Starlette's ``Router`` calls its
    ``middleware_stack``, made once when the router is)."""
    app.router.middleware_stack = ServedFirst(app.router.middleware_stack, app.router, routes)
