"""What /admin accepts and answers. Every read of personal data states a purpose (protocol art. 4, 6)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

# A stated purpose: why this staff member needs this pupil's data now. It goes into the privacy log.
Purpose = Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=200)]
LeerIdKey = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64)
]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    request_id: str | None = None


class IdentitySearch(BaseModel):
    """Exactly one key. A POST body, so LeerID keys never appear in URLs (and proxy logs)."""

    sub: uuid.UUID | None = None
    account_uuid: LeerIdKey | None = None
    leer_id_uuid: LeerIdKey | None = None
    purpose: Purpose

    @model_validator(mode="after")
    def _exactly_one(self) -> IdentitySearch:
        given = [k for k in (self.sub, self.account_uuid, self.leer_id_uuid) if k is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of sub, account_uuid, leer_id_uuid")
        return self


class IdentityView(BaseModel):
    """Everything the gateway holds about one pupil (protocol art. 3: the latest login's data only)."""

    sub: uuid.UUID
    leer_id_uuid: str | None
    account_uuids: list[str] = Field(description="Every account_uuid of the pupil (current and historical).")
    given_name: str
    family_name: str
    school_code: str | None
    school_name: str | None
    temporary: bool
    created_at: dt.datetime
    last_login_at: dt.datetime


class SessionView(BaseModel):
    sid: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    absolute_expires_at: dt.datetime
    revoked_at: dt.datetime | None


class EventView(BaseModel):
    id: int
    type: str
    sub: uuid.UUID
    data: dict[str, Any]
    created_at: dt.datetime


class ReportView(BaseModel):
    id: int
    kind: str
    subs: list[str]
    account_uuid: str | None
    detail: str
    created_at: dt.datetime
    handled_at: dt.datetime | None


class PrivacyLogView(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    sub: uuid.UUID | None
    fields: list[str]
    purpose: str
    request_id: str | None
    data: dict[str, Any] | None
    prev_hash: str
    hash: str


class IdentityExport(BaseModel):
    """GDPR art. 15: everything held about one pupil. Session secrets are never stored, so never shown."""

    exported_at: dt.datetime
    identity: IdentityView
    sessions: list[SessionView]
    events: list[EventView]
    data_quality_reports: list[ReportView]
    privacy_log: list[PrivacyLogView]


class Erasure(BaseModel):
    """GDPR art. 17: what was deleted."""

    sub: uuid.UUID
    aliases: int
    sessions: int
    data_quality_reports: int


class ReportCreate(BaseModel):
    """Protocol art. 7: a data-quality problem a staff member found (e.g. a pupil's own report)."""

    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{2,59}$")] = Field(
        examples=["wrong_name", "missing_enrolment"]
    )
    subs: list[uuid.UUID] = Field(min_length=1, max_length=10)
    account_uuid: LeerIdKey | None = None
    detail: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=1000)]
    purpose: Purpose


class DovPupil(BaseModel):
    leer_id_uuid: str | None
    account_uuids: list[str]


class DovReport(BaseModel):
    id: int
    kind: str
    detail: str
    account_uuid: str | None
    created_at: dt.datetime
    pupils: list[DovPupil] = Field(description="DOV's own keys; DOV does not know our subs.")


class DovExport(BaseModel):
    """Protocol art. 7: the open reports, in DOV's keys, to send to DOV in writing."""

    generated_at: dt.datetime
    reports: list[DovReport]


class PrivacyLogPage(BaseModel):
    entries: list[PrivacyLogView]
    next_cursor: int


class AccessLine(BaseModel):
    sub: uuid.UUID
    action: str
    count: int
    first_at: dt.datetime
    last_at: dt.datetime


class ActorAccess(BaseModel):
    actor: str
    pupils: int
    accesses: list[AccessLine]


class AccessReport(BaseModel):
    """Protocol art. 9 / GDPR art. 33: who touched which pupils' data in [from, to)."""

    start: dt.datetime = Field(serialization_alias="from")
    end: dt.datetime = Field(serialization_alias="to")
    pupils: int = Field(description="Distinct pupils concerned.")
    actors: list[ActorAccess]


class ChainStatus(BaseModel):
    ok: bool
    checked: int
    head_id: int | None
    head_hash: str | None
    broken_id: int | None = None
    reason: str | None = None


ReportStatus = Literal["open", "handled", "all"]
