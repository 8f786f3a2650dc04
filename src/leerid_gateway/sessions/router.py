"""/me: the pupil's own view of what the gateway holds about them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from leerid_gateway.deps import DbSession, GatewayDep
from leerid_gateway.kit.errors import ProblemError
from leerid_gateway.sessions import cookies
from leerid_gateway.sessions import service as sessions
from leerid_gateway.sessions.schemas import Me

router = APIRouter(tags=["pupil"])


@router.get("/me", response_model=Me, responses={401: {"description": "No live session (problem+json)"}})
async def me(request: Request, gateway: GatewayDep, db: DbSession) -> JSONResponse:
    """The logged-in pupil's own data (GDPR art. 15 for the pupil themself): opaque sub, names,
    school and whether the account is still temporary. LeerID keys are not shown."""
    cookie = request.cookies.get(cookies.session_cookie_name(gateway.settings))
    rp = gateway.relying_party
    active = await sessions.resolve(db, rp.session_hasher, rp.session_policy, cookie) if cookie else None
    if active is None:
        raise ProblemError(401, "Not logged in", "No live session; send the browser to /login.")
    identity = active.identity
    body = Me(
        sub=str(identity.sub),
        given_name=identity.given_name,
        family_name=identity.family_name,
        school_code=identity.school_code,
        school_name=identity.school_name,
        temporary=identity.temporary,
        session_expires_at=active.expires_at,
    )
    return JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": "no-store"})
