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
    encoded = _encoded(prev_hash, at, actor, action, sub, fields, purpose, request_id, data)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _encoded(
    prev_hash: str,
    at: dt.datetime,
    actor: str,
    action: str,
    sub: uuid.UUID | str | None,
    fields: Sequence[str],
    purpose: str,
    request_id: str | None,
    data: dict[str, Any] | None,
) -> str:
    payload = {
        "v": 1,
        "prev": prev_hash,
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "sub": sub if isinstance(sub, str) or sub is None else str(sub),
        "fields": list(fields),
        "purpose": purpose,
        "request_id": request_id,
        "data": data,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# prev as a value that nothing else encodes to: a string's quote inside a value is always escaped,
# so `"prev":"\u0000"` is a key and its value. Only ``data`` can hold keys, and it sorts before
# "prev": the last occurrence is the entry's own.
_PREV_MARK = '"prev":"\\u0000"'


def entry_hash_parts(
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    sub: uuid.UUID | None,
    fields: Sequence[str],
    purpose: str,
    request_id: str | None,
    data: dict[str, Any] | None,
) -> tuple[str, str]:
    """The canonical encoding around the previous entry's hash: (before, after), such that
    ``sha256(before + prev_hash + after)`` is ``entry_hash(prev_hash, ...)`` for any 64-hex-digit
    ``prev_hash`` (which JSON writes as it is). For the database to finish the hash once it knows
    the head of the chain (PostgreSQL, migration 0008): the same chain, computed in one round trip."""
    encoded = _encoded("\x00", at, actor, action, sub, fields, purpose, request_id, data)
    head, mark, tail = encoded.rpartition(_PREV_MARK)
    if not mark:
        raise AssertionError("the canonical encoding lost its prev field")
    return head + '"prev":"', '"' + tail


# The sub as a value that nothing else encodes to, as _PREV_MARK; "sub" sorts after "prev", and only
# ``data`` (before both) can hold keys, so the last occurrence after the prev mark is the entry's own.
_SUB_MARK = '"sub":"\\u0001"'


def entry_hash_parts_around_sub(
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    fields: Sequence[str],
    purpose: str,
    request_id: str | None,
    data: dict[str, Any] | None,
) -> tuple[str, str, str]:
    """The canonical encoding around the previous hash *and* the sub: (before, between, after),
    such that ``sha256(before + prev_hash + between + str(sub) + after)`` is
    ``entry_hash(prev_hash, sub=sub, ...)`` for any 64-hex-digit ``prev_hash`` and any UUID ``sub``
    (JSON writes both as they are). For an entry about a pupil whom only the database knows yet: a
    returning pupil's login, whose identity is read, updated and recorded in one call (migration
    0009)."""
    encoded = _encoded("\x00", at, actor, action, "\x01", fields, purpose, request_id, data)
    head, mark, tail = encoded.rpartition(_PREV_MARK)
    between, sub_mark, end = tail.rpartition(_SUB_MARK)
    if not mark or not sub_mark:
        raise AssertionError("the canonical encoding lost its prev or sub field")
    return head + '"prev":"', '"' + between + '"sub":"', '"' + end
