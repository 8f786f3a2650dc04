"""The privacy log (protocol art. 6): who did what with which pupil's data, and why. No names."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from leerid_gateway.db import Base, utcnow
from leerid_gateway.identity.models import BigIntId


class PrivacyLogEntry(Base):
    __tablename__ = "privacy_log"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    sub: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    purpose: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(64))
