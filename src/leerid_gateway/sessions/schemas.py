from __future__ import annotations

import datetime as dt

from pydantic import BaseModel


class Me(BaseModel):
    sub: str
    given_name: str
    family_name: str
    school_code: str | None
    school_name: str | None
    temporary: bool
    session_expires_at: dt.datetime
