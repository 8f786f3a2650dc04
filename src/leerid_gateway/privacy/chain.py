"""The hash chain of the privacy log: one canonical encoding, one hash function (SHA-256).

Each entry's hash covers its content and the previous entry's hash, so changing, inserting or
removing an entry anywhere but at the very end breaks every later link. The end is protected by
noting the head (``privacy-log verify`` prints it) somewhere the database's writers cannot reach.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

# The prev_hash of the first entry ever written.
GENESIS = "0" * 64


def entry_hash(
    prev_hash: str,
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    sub: uuid.UUID | None,
    fields: Sequence[str],
    purpose: str,
    request_id: str | None,
    data: dict[str, Any] | None,
) -> str:
    """SHA-256 of a canonical JSON encoding (sorted keys, no whitespace, UTC microseconds)."""
    payload = {
        "v": 1,
        "prev": prev_hash,
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "sub": str(sub) if sub is not None else None,
        "fields": list(fields),
        "purpose": purpose,
        "request_id": request_id,
        "data": data,
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()
