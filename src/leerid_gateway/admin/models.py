"""Staff credentials for /admin (protocol art. 4: only staff charged with access control)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from leerid_gateway.db import Base, utcnow

ACCESS_CONTROL = "access-control"  # reads pupils' data, exports, erases, handles data-quality reports
AUDITOR = "auditor"  # reads the privacy log (protocol art. 6, 9)
ROLES = (ACCESS_CONTROL, AUDITOR)


class StaffMember(Base):
    __tablename__ = "staff_members"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # A handle such as "an.peeters"; it is what the privacy log names as the actor.
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(30))
    # HMAC-SHA256 of the API key under LEERID_SECRET_KEY ("staff-key"): keys are 256-bit random.
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
