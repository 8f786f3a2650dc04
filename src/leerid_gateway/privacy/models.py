"""The privacy log (protocol art. 6): who did what with which pupil's data, and why. No names.

Append-only and hash-chained: every entry carries the hash of the one before it (``prev_hash``) and
its own (``hash``), so an entry altered, inserted or removed in the database breaks the chain
(``leerid-gateway privacy-log verify``). On both backends a trigger refuses UPDATE (migration 0002).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from leerid_gateway.db import Base, utcnow
from leerid_gateway.identity.models import BigIntId


class PrivacyLogEntry(Base):
    __tablename__ = "privacy_log"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    # "system" or "staff:<name>": who acted.
    actor: Mapped[str] = mapped_column(String(100), index=True)
    action: Mapped[str] = mapped_column(String(60))
    # The only reference to a pupil: the opaque sub (never a name or a LeerID key).
    sub: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    # Which of the protocol's fields were received, read or disclosed.
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    purpose: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(64))
    # Machine-readable details of the act (counts, the pruning anchor); never personal data.
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
