"""/login, /callback and /logout: the browser's side of the OpenID Connect flow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from leerid_gateway.deps import DbSession, GatewayDep, RequestId, client_address
from leerid_gateway.oidc.return_to import MAX_LENGTH, is_allowed
from leerid_gateway.oidc.service import bad_return_to
from leerid_gateway.sessions import cookies
from leerid_gateway.sessions import service as sessions

router = APIRouter(tags=["login"])


@router.get(
    "/login",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "To ACM's authorization endpoint"},
        400: {"description": "Dutch error page"},
    },
)
async def login(
    request: Request, gateway: GatewayDep, return_to: Annotated[str, Query(max_length=MAX_LENGTH)]
) -> RedirectResponse:
    """Start a login: 303 to ACM with PKCE, state and nonce bound to this browser."""
    start = await gateway.relying_party.start(return_to, client=client_address(request))
    response = RedirectResponse(start.authorization_url, status_code=303)
    cookies.set_login_binding(response, gateway.settings, start.browser_binding)
    response.headers["Cache-Control"] = "no-store"
    return response


async def _finish(
    request: Request, gateway: GatewayDep, params: dict[str, str], request_id: str | None
) -> Response:
    binding = request.cookies.get(cookies.login_cookie_name(gateway.settings))
    result = await gateway.relying_party.finish(
        params, binding, request_id=request_id, client=client_address(request)
    )
    response = RedirectResponse(result.return_to, status_code=303)
    cookies.clear_login_binding(response, gateway.settings)
    cookies.set_session(response, gateway.settings, result.session_cookie)
    response.headers["Cache-Control"] = "no-store"
    return response


_CALLBACK_PARAMS = ("code", "state", "iss", "error", "error_description")
_CALLBACK_RESPONSES: dict[int | str, dict[str, str]] = {
    303: {"description": "Logged in: to return_to with the session cookie"},
    400: {"description": "Dutch error page"},
    403: {"description": "Dutch refusal page (no enrolment at a partner school)"},
    502: {"description": "Dutch page: ACM or the datastore failed; nothing was stored"},
}


@router.get("/callback", status_code=303, response_class=RedirectResponse, responses=_CALLBACK_RESPONSES)
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
