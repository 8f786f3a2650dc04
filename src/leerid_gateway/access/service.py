"""The access decision (protocol art. 3 and recital D): enrolled at a partner school, or no access."""

from __future__ import annotations

from collections.abc import Set

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.access.models import PartnerSchool
from leerid_gateway.db import Db, connection, orm
from leerid_gateway.leerid.profile import LeerIdProfile

# Built once: constructing the statement costs more CPU than running its cached compiled form.
_PARTNERS_AMONG = select(PartnerSchool.code).where(PartnerSchool.code.in_(bindparam("codes", expanding=True)))


async def partner_school_of(db: Db, profile: LeerIdProfile, known: Set[str] | None = None) -> str | None:
    """The first of the pupil's enrolments that is at a partner school, or None (refuse).

    ``known``: every partner school's code, from the replica's list that NOTIFY keeps current
    (``PartnerSchools.codes()``, access/cache.py); None: ask the database about these schools.
    """
    if not profile.school_codes:
        return None
    if known is None:
        conn = await connection(orm(db))  # an expanding IN: through SQLAlchemy
        known = set((await conn.execute(_PARTNERS_AMONG, {"codes": list(profile.school_codes)})).scalars())
    return next((code for code in profile.school_codes if code in known), None)


async def add(db: AsyncSession, code: str, name: str | None) -> bool:
    if await db.get(PartnerSchool, code) is not None:
        return False
    db.add(PartnerSchool(code=code, name=name))
    await db.flush()
    return True


async def remove(db: AsyncSession, code: str) -> bool:
    result = await db.execute(delete(PartnerSchool).where(PartnerSchool.code == code))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def list_all(db: AsyncSession) -> list[PartnerSchool]:
    return list(await db.scalars(select(PartnerSchool).order_by(PartnerSchool.code)))
