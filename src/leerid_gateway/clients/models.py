"""Internal clients (eTeacher services) that may call /introspect and /events."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from leerid_gateway.db import Base, utcnow


class InternalClient(Base):
    __tablename__ = "internal_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # HMAC-SHA256 of the secret under LEERID_SECRET_KEY: secrets are 256-bit random, so a keyed
    # hash is as strong as a slow password hash and costs microseconds (issue 5, hot path).
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
