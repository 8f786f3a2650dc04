"""Staff authentication on /admin: HTTP Bearer with a staff API key (RFC 6750 §2.1), then a role.

Separate from pupils' session cookies and from eTeacher's client credentials: neither opens /admin.
A staff member without the role a route needs is refused (403) and the attempt is written to the
privacy log (protocol art. 4, 6).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from leerid_gateway.admin import service
from leerid_gateway.admin.models import ACCESS_CONTROL, AUDITOR, StaffMember
from leerid_gateway.db import unit_of_work
from leerid_gateway.deps import GatewayDep, RequestId, client_address
from leerid_gateway.kit.crypto import Hasher
from leerid_gateway.kit.errors import ProblemError
from leerid_gateway.privacy import service as privacy

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="StaffKey",
    description="A staff API key (`lgk_…`) made with `leerid-gateway staff add`.",
)
CHALLENGE = 'Bearer realm="leerid-gateway admin"'


def _unauthorized(detail: str, error: str | None = None) -> ProblemError:
    challenge = CHALLENGE + (f', error="{error}"' if error else "")
    return ProblemError(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


async def require_staff(
    request: Request,
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> StaffMember:
    """Every /admin route depends on this (mounted on the router: authenticated by default).

    The lookup is its own short transaction, finished before the route opens its own: SQLite
    allows one writer, and a request must never hold two transactions. Every staff request counts
    toward a per-address rate limit shared by all replicas (issue 6), guessed keys included.
    """
    await gateway.limiter.hit("admin", client_address(request), gateway.settings.rate_limit_admin)
    if credentials is None:
        raise _unauthorized("A staff API key is required (Authorization: Bearer lgk_…).")
    hasher = Hasher(gateway.settings.secret_key.get_secret_value(), service.HASH_PURPOSE)
    async with unit_of_work(gateway.session_factory) as db:
        staff = await service.authenticate(db, hasher, credentials.credentials)
    if staff is None:
        raise _unauthorized("Unknown or revoked staff key.", "invalid_token")
    return staff


Staff = Annotated[StaffMember, Depends(require_staff)]


def require_role(role: str) -> Callable[..., Awaitable[StaffMember]]:
    async def dependency(
        request: Request, gateway: GatewayDep, staff: Staff, request_id: RequestId
    ) -> StaffMember:
        if staff.role == role:
            return staff
        route = getattr(request.scope.get("route"), "path", "<unmatched>")
        async with unit_of_work(gateway.session_factory) as db:
            await privacy.record(
                db,
                actor=privacy.staff_actor(staff.name),
                action=privacy.STAFF_REFUSED,
                purpose=f"geweigerd: de rol {role} is vereist (protocol art. 4)",
                request_id=request_id,
                data={"method": request.method, "route": route, "role": staff.role},
            )
        raise ProblemError(403, "Forbidden", f"This needs the {role} role.")

    return dependency


AccessControl = Annotated[StaffMember, Depends(require_role(ACCESS_CONTROL))]
Auditor = Annotated[StaffMember, Depends(require_role(AUDITOR))]
