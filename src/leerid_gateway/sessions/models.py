"""Server-side browser sessions; the cookie carries only a random secret whose HMAC is stored."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from leerid_gateway.db import Base
from leerid_gateway.identity.models import BigIntId


class BrowserSession(Base):
    __tablename__ = "sessions"

    # The public session id (the `sid` claim of issued tokens).
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    identity_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column()
    last_seen_at: Mapped[dt.datetime] = mapped_column()
    absolute_expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
