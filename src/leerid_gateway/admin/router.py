"""/admin: staff access to pupils' data (protocol art. 4), the subject's rights (GDPR art. 15, 17),
data quality (protocol art. 7) and the privacy log (protocol art. 6, 9).

Closed by default: the router itself depends on ``require_staff``; each route adds its role. Every
read of personal data takes a stated ``purpose`` that goes into the privacy log with the reader.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.admin import quality, schemas, service
from leerid_gateway.admin.auth import AccessControl, Auditor, require_staff
from leerid_gateway.deps import DbSession, RequestId
from leerid_gateway.identity.models import Identity
from leerid_gateway.kit.errors import ProblemError
from leerid_gateway.privacy import service as privacy

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.Problem, "description": "No or unknown staff key"},
    403: {"model": schemas.Problem, "description": "The staff member lacks the role (the attempt is logged)"},
}
router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_staff)], responses=_ERRORS)

PurposeQuery = Annotated[
    str,
    Query(min_length=10, max_length=200, description="Why you need this data; written to the privacy log."),
]
SubPath = Annotated[uuid.UUID, Path(description="The pupil's opaque sub.")]


def _json(body: BaseModel | list[Any], status: int = 200) -> JSONResponse:
    """Personal data: never cached anywhere (RFC 9111 §5.2.2.5)."""
    content = (
        [item.model_dump(mode="json", by_alias=True) for item in body]
        if isinstance(body, list)
        else body.model_dump(mode="json", by_alias=True)
    )
    return JSONResponse(content, status_code=status, headers={"Cache-Control": "no-store"})


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, "Not found", f"No such {what}.")


async def _pupil(db: AsyncSession, sub: uuid.UUID) -> Identity:
    identity = await service.by_sub(db, sub)
    if identity is None:
        raise _not_found("pupil")
    return identity


# --- identities (access-control) -----------------------------------------------------------------


@router.post(
    "/identities/search", response_model=schemas.IdentityView, responses={404: {"model": schemas.Problem}}
)
async def search_identity(
    body: schemas.IdentitySearch, staff: AccessControl, db: DbSession, request_id: RequestId
) -> JSONResponse:
    """One pupil's data by sub, account_uuid or leer_id_uuid (a body, so LeerID keys stay out of URLs)."""
    identity = await service.find_identity(db, body)
    if identity is None:
        raise _not_found("pupil")
    actor = privacy.staff_actor(staff.name)
    return _json(
        await service.look_up(db, identity, actor=actor, purpose=body.purpose, request_id=request_id)
    )


@router.get(
    "/identities/{sub:uuid}", response_model=schemas.IdentityView, responses={404: {"model": schemas.Problem}}
)
async def get_identity(
    sub: SubPath, purpose: PurposeQuery, staff: AccessControl, db: DbSession, request_id: RequestId
) -> JSONResponse:
    """One pupil's data by sub."""
    identity = await _pupil(db, sub)
    actor = privacy.staff_actor(staff.name)
    return _json(await service.look_up(db, identity, actor=actor, purpose=purpose, request_id=request_id))


@router.get(
    "/identities/{sub:uuid}/export",
    response_model=schemas.IdentityExport,
    responses={404: {"model": schemas.Problem}},
)
async def export_identity(
    sub: SubPath, purpose: PurposeQuery, staff: AccessControl, db: DbSession, request_id: RequestId
) -> JSONResponse:
    """GDPR art. 15: everything held about one pupil, as JSON."""
    identity = await _pupil(db, sub)
    actor = privacy.staff_actor(staff.name)
    return _json(await service.export(db, identity, actor=actor, purpose=purpose, request_id=request_id))


@router.delete(
    "/identities/{sub:uuid}",
    response_model=schemas.Erasure,
    responses={404: {"model": schemas.Problem}, 409: {"model": schemas.Problem}},
)
async def erase_identity(
    sub: SubPath, purpose: PurposeQuery, staff: AccessControl, db: DbSession, request_id: RequestId
) -> JSONResponse:
    """GDPR art. 17: delete the pupil with everything attached; eTeacher gets `identity.deleted`."""
    try:
        erased = await service.erase(
            db, sub, actor=privacy.staff_actor(staff.name), purpose=purpose, request_id=request_id
        )
    except service.Busy:
        raise ProblemError(409, "Conflict", "The pupil is logging in right now; retry in a moment.") from None
    if erased is None:
        raise _not_found("pupil")
    return _json(erased)


# --- data quality (access-control) ---------------------------------------------------------------


@router.get("/data-quality-reports", response_model=list[schemas.ReportView])
async def list_reports(
    purpose: PurposeQuery,
    staff: AccessControl,
    db: DbSession,
    request_id: RequestId,
    status: schemas.ReportStatus = "open",
) -> JSONResponse:
    """Protocol art. 7: the data-quality reports (open by default)."""
    actor = privacy.staff_actor(staff.name)
    return _json(await quality.list_reports(db, status, actor=actor, purpose=purpose, request_id=request_id))


@router.post(
    "/data-quality-reports",
    status_code=201,
    response_model=schemas.ReportView,
    responses={422: {"model": schemas.Problem}},
)
async def create_report(
    body: schemas.ReportCreate, staff: AccessControl, db: DbSession, request_id: RequestId
) -> JSONResponse:
    """Protocol art. 7: file a report about pupils the gateway holds."""
    try:
        report = await quality.create(db, body, actor=privacy.staff_actor(staff.name), request_id=request_id)
    except quality.UnknownPupil:
        raise ProblemError(
            422, "Unknown pupil", "Every sub must belong to a pupil the gateway holds."
        ) from None
    return _json(report, status=201)


@router.get("/data-quality-reports/export", response_model=schemas.DovExport)
async def export_reports(
    purpose: PurposeQuery, staff: AccessControl, db: DbSession, request_id: RequestId
) -> JSONResponse:
    """Protocol art. 7: the open reports in DOV's keys, to send to DOV."""
    actor = privacy.staff_actor(staff.name)
    return _json(await quality.export_for_dov(db, actor=actor, purpose=purpose, request_id=request_id))


@router.post(
    "/data-quality-reports/{report_id}/handled",
    response_model=schemas.ReportView,
    responses={404: {"model": schemas.Problem}},
)
async def handle_report(
    report_id: Annotated[int, Path(ge=1, le=2**62)],
    staff: AccessControl,
    db: DbSession,
    request_id: RequestId,
) -> JSONResponse:
    """Protocol art. 7: the report was sent to DOV; mark it handled (idempotent)."""
    report = await quality.mark_handled(
        db, report_id, actor=privacy.staff_actor(staff.name), request_id=request_id
    )
    if report is None:
        raise _not_found("report")
    return _json(report)


# --- the privacy log (auditor) -------------------------------------------------------------------

From = Annotated[dt.datetime | None, Query(alias="from", description="Inclusive start (ISO 8601).")]
To = Annotated[dt.datetime | None, Query(alias="to", description="Exclusive end (ISO 8601).")]


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ProblemError(422, "Invalid request", "Give times with a time zone (e.g. 2026-01-31T00:00:00Z).")
    return value.astimezone(dt.UTC)


@router.get("/privacy-log", response_model=schemas.PrivacyLogPage)
async def privacy_log(
    purpose: PurposeQuery,
    staff: Auditor,
    db: DbSession,
    request_id: RequestId,
    start: From = None,
    end: To = None,
    sub: uuid.UUID | None = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=60)] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="Cursor: the last id you received.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    """Protocol art. 6: the privacy log, oldest first (the read itself is logged)."""
    found = await privacy.entries(
        db,
        start=_aware(start),
        end=_aware(end),
        sub=sub,
        actor=actor,
        action=action,
        after=after,
        limit=limit,
    )
    page = schemas.PrivacyLogPage(
        entries=[service.log_view(e) for e in found], next_cursor=found[-1].id if found else after
    )
    await privacy.record(
        db,
        actor=privacy.staff_actor(staff.name),
        action=privacy.PRIVACY_LOG_READ,
        purpose=purpose,
        request_id=request_id,
        data={"entries": len(found), "sub": str(sub) if sub else None},
    )
    return _json(page)


@router.get("/privacy-log/access-report", response_model=schemas.AccessReport)
async def access_report(
    purpose: PurposeQuery,
    staff: Auditor,
    db: DbSession,
    request_id: RequestId,
    start: Annotated[dt.datetime, Query(alias="from", description="Inclusive start (ISO 8601).")],
    end: Annotated[dt.datetime, Query(alias="to", description="Exclusive end (ISO 8601).")],
    actor: Annotated[str | None, Query(max_length=100)] = None,
) -> JSONResponse:
    """Protocol art. 9 / GDPR art. 33: who accessed which pupils' data in [from, to)."""
    begin, finish = _aware(start), _aware(end)
    assert begin is not None and finish is not None
    rows = await privacy.access_report(db, start=begin, end=finish, actor=actor)
    by_actor: dict[str, list[schemas.AccessLine]] = {}
    for row in rows:
        by_actor.setdefault(row.actor, []).append(
            schemas.AccessLine(
                sub=row.sub, action=row.action, count=row.count, first_at=row.first_at, last_at=row.last_at
            )
        )
    report = schemas.AccessReport(
        start=begin,
        end=finish,
        pupils=len({row.sub for row in rows}),
        actors=[
            schemas.ActorAccess(actor=name, pupils=len({line.sub for line in lines}), accesses=lines)
            for name, lines in by_actor.items()
        ],
    )
    await privacy.record(
        db,
        actor=privacy.staff_actor(staff.name),
        action=privacy.PRIVACY_LOG_READ,
        purpose=purpose,
        request_id=request_id,
        data={"report": "access", "from": begin.isoformat(), "to": finish.isoformat()},
    )
    return _json(report)


@router.get("/privacy-log/verify", response_model=schemas.ChainStatus)
async def verify_privacy_log(staff: Auditor, db: DbSession) -> JSONResponse:
    """Protocol art. 6: walk the hash chain; names the first entry that was altered, removed or inserted."""
    verdict = await privacy.verify(db)
    return _json(
        schemas.ChainStatus(
            ok=verdict.ok,
            checked=verdict.checked,
            head_id=verdict.head_id,
            head_hash=verdict.head_hash,
            broken_id=verdict.broken_id,
            reason=verdict.reason,
        )
    )
