"""Writing the privacy log (protocol art. 6). Always in the transaction of the act it records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.db import journal_lock, utcnow
from leerid_gateway.privacy.models import PrivacyLogEntry

# Actions, stable strings: the DPO's exports and queries rely on them.
LOGIN_RECEIVED = "login.received"  # attributes received from LeerID and stored
LOGIN_REFUSED = "login.refused"  # access refused (no enrolment at a partner school)
IDENTITY_MERGED = "identity.merged"
SESSION_REVOKED = "session.revoked"


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    purpose: str,
    sub: uuid.UUID | None = None,
    fields: Sequence[str] = (),
    request_id: str | None = None,
) -> None:
    """Add one entry. No names and no LeerID keys: ``sub`` is the only reference to a pupil."""
    await journal_lock(session)
    session.add(
        PrivacyLogEntry(
            at=utcnow(),
            actor=actor,
            action=action,
            sub=sub,
            fields=list(fields),
            purpose=purpose,
            request_id=request_id,
        )
    )
