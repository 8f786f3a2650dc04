"""Internal clients: created by the CLI, authenticated on /introspect (RFC 7662 §2.1)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leerid_gateway.clients.models import InternalClient
from leerid_gateway.db import utcnow
from leerid_gateway.kit.crypto import Hasher, random_token


@dataclass(frozen=True, slots=True)
class NewClient:
    client_id: str
    client_secret: str
    name: str


async def add(db: AsyncSession, hasher: Hasher, name: str) -> NewClient:
    client_id = random_token(12, prefix="lgc_")
    secret = random_token(32, prefix="lgs_")
    db.add(InternalClient(client_id=client_id, name=name, secret_hash=hasher.digest(secret)))
    await db.flush()
    return NewClient(client_id=client_id, client_secret=secret, name=name)


async def list_all(db: AsyncSession) -> list[InternalClient]:
    return list(await db.scalars(select(InternalClient).order_by(InternalClient.created_at)))


async def revoke(db: AsyncSession, client_id_or_name: str) -> bool:
    result = await db.execute(
        update(InternalClient)
        .where(
            (InternalClient.client_id == client_id_or_name) | (InternalClient.name == client_id_or_name),
            InternalClient.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def parse_basic(header: str) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1 HTTP Basic: base64(urlencode(id) ":" urlencode(secret))."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(secret)
