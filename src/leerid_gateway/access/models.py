"""Partner schools: the schools whose pupils may use eTeacher (protocol, recital D)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from leerid_gateway.db import Base, utcnow


class PartnerSchool(Base):
    __tablename__ = "partner_schools"

    # The instellingsnummer DOV gives every school (ov_orgcode).
    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
