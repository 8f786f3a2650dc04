"""Logins in flight: the state, nonce and PKCE verifier of one authorization request."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from leerid_gateway.db import Base


class LoginTransaction(Base):
    """Shared by all replicas (any of them may receive the callback); deleted when redeemed."""

    __tablename__ = "login_transactions"

    # HMAC of `state`; the state itself only travels through the browser.
    state_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    # HMAC of the random value in the browser-binding cookie (RFC 6819 §4.4.1.8, RFC 9700 §4.7.1).
    browser_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    return_to: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[dt.datetime] = mapped_column()
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
