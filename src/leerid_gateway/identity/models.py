"""Identities, their account aliases and the identity event outbox (docs/identity.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from leerid_gateway.db import Base, utcnow

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class Identity(Base):
    """One pupil as eTeacher knows them. Holds the latest login's attributes only (protocol art. 3)."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # The opaque subject eTeacher sees; never derived from a LeerID key.
    sub: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    # Set once the pupil is identified with a national number; the stable key then.
    leer_id_uuid: Mapped[str | None] = mapped_column(String(64), unique=True)
    given_name: Mapped[str] = mapped_column(String(200))
    family_name: Mapped[str] = mapped_column(String(200))
    school_code: Mapped[str | None] = mapped_column(String(16))
    school_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)

    @property
    def temporary(self) -> bool:
        """An identity without leer_id_uuid rests on a temporary account (protocol art. 3)."""
        return self.leer_id_uuid is None


class AccountAlias(Base):
    """Every account_uuid ever seen for a pupil belongs to exactly one identity (rule 2)."""

    __tablename__ = "account_aliases"

    account_uuid: Mapped[str] = mapped_column(String(64), primary_key=True)
    identity_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class IdentityEvent(Base):
    """The outbox eTeacher follows through GET /events; written in the same transaction as the change."""

    __tablename__ = "identity_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(40))
    sub: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DataQualityReport(Base):
    """A problem in DOV's data that we must report back (protocol art. 7)."""

    __tablename__ = "data_quality_reports"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(60))
    # The identities concerned (opaque subs); the LeerID keys stay in the identities table.
    subs: Mapped[list[str]] = mapped_column(JSON, default=list)
    account_uuid: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[dt.datetime | None] = mapped_column()
