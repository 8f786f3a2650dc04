"""Data-quality reports (protocol art. 7): listed, made by staff, exported for DOV, marked handled.

Reconciliation files reports by itself (identity/service.py, an account_uuid claimed by two
identified pupils); staff file the others. DOV receives DOV's own keys, never our subs or names.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.admin import schemas
from leerid_gateway.admin.service import report_view
from leerid_gateway.db import utcnow
from leerid_gateway.identity.models import AccountAlias, DataQualityReport, Identity
from leerid_gateway.privacy import service as privacy

_REPORT_FIELDS = ("account_uuid",)
_DOV_FIELDS = ("leer_id_uuid", "account_uuids")


class UnknownPupil(Exception):
    """A report can only name pupils the gateway holds."""


async def _log_each(
    db: AsyncSession,
    subs: list[str],
    *,
    actor: str,
    action: str,
    purpose: str,
    fields: tuple[str, ...],
    request_id: str | None,
    report_id: int | None = None,
) -> None:
    for sub in sorted(set(subs)):
        await privacy.record(
            db,
            actor=actor,
            action=action,
            purpose=purpose,
            sub=uuid.UUID(sub),
            fields=fields,
            request_id=request_id,
            data={"report": report_id} if report_id is not None else None,
        )


async def list_reports(
    db: AsyncSession, status: schemas.ReportStatus, *, actor: str, purpose: str, request_id: str | None
) -> list[schemas.ReportView]:
    query = select(DataQualityReport).order_by(DataQualityReport.id)
    if status == "open":
        query = query.where(DataQualityReport.handled_at.is_(None))
    elif status == "handled":
        query = query.where(DataQualityReport.handled_at.is_not(None))
    reports = list(await db.scalars(query))
    await _log_each(
        db,
        [s for r in reports for s in r.subs],
        actor=actor,
        action=privacy.QUALITY_READ,
        purpose=purpose,
        fields=_REPORT_FIELDS,
        request_id=request_id,
    )
    return [report_view(r) for r in reports]


async def create(
    db: AsyncSession, body: schemas.ReportCreate, *, actor: str, request_id: str | None
) -> schemas.ReportView:
    subs = sorted({str(s) for s in body.subs})
    known = set(await db.scalars(select(Identity.sub).where(Identity.sub.in_([uuid.UUID(s) for s in subs]))))
    if len(known) != len(subs):
        raise UnknownPupil
    report = DataQualityReport(
        kind=body.kind, subs=subs, account_uuid=body.account_uuid, detail=body.detail, created_at=utcnow()
    )
    db.add(report)
    await db.flush()
    await _log_each(
        db,
        subs,
        actor=actor,
        action=privacy.QUALITY_REPORTED,
        purpose=body.purpose,
        fields=_REPORT_FIELDS if body.account_uuid else (),
        request_id=request_id,
        report_id=report.id,
    )
    return report_view(report)


async def export_for_dov(
    db: AsyncSession, *, actor: str, purpose: str, request_id: str | None
) -> schemas.DovExport:
    """The open reports in DOV's keys. A disclosure to DOV (the source of the data), logged per pupil."""
    reports = list(
        await db.scalars(
            select(DataQualityReport)
            .where(DataQualityReport.handled_at.is_(None))
            .order_by(DataQualityReport.id)
        )
    )
    subs = sorted({s for r in reports for s in r.subs})
    pupils: dict[str, schemas.DovPupil] = {}
    if subs:
        identities = await db.execute(
            select(Identity.id, Identity.sub, Identity.leer_id_uuid).where(
                Identity.sub.in_([uuid.UUID(s) for s in subs])
            )
        )
        for identity_id, sub, leer_id_uuid in identities:
            accounts = await db.scalars(
                select(AccountAlias.account_uuid)
                .where(AccountAlias.identity_id == identity_id)
                .order_by(AccountAlias.account_uuid)
            )
            pupils[str(sub)] = schemas.DovPupil(leer_id_uuid=leer_id_uuid, account_uuids=list(accounts))
    result = schemas.DovExport(
        generated_at=utcnow(),
        reports=[
            schemas.DovReport(
                id=r.id,
                kind=r.kind,
                detail=r.detail,
                account_uuid=r.account_uuid,
                created_at=r.created_at,
                pupils=[pupils[s] for s in r.subs if s in pupils],
            )
            for r in reports
        ],
    )
    await _log_each(
        db,
        [s for s in subs if s in pupils],
        actor=actor,
        action=privacy.QUALITY_EXPORTED,
        purpose=purpose,
        fields=_DOV_FIELDS,
        request_id=request_id,
    )
    return result


async def mark_handled(
    db: AsyncSession, report_id: int, *, actor: str, request_id: str | None
) -> schemas.ReportView | None:
    report = await db.get(DataQualityReport, report_id)
    if report is None:
        return None
    if report.handled_at is None:
        report.handled_at = utcnow()
        await db.flush()
        await _log_each(
            db,
            list(report.subs),
            actor=actor,
            action=privacy.QUALITY_HANDLED,
            purpose="gemeld aan DOV en afgehandeld (protocol art. 7)",
            fields=(),
            request_id=request_id,
            report_id=report.id,
        )
    return report_view(report)
