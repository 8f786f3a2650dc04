"""LeerID's attributes, normalised once at the edge into one typed value (issue 2 §3, protocol art. 3).

Everything the datastore sends beyond the protocol's fields is dropped here and goes no further.
Every field may arrive as a string or as an array of strings (as real integrations report for
``ov_leerid_uuid``); this module is the only place that knows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leerid_gateway.kit.errors import UpstreamError

# account_uuid / leer_id_uuid are UUIDs in practice; accept any sane opaque key, refuse junk.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_SCHOOL = re.compile(r"^[0-9A-Za-z]{1,16}$")
_MAX_NAME = 200
# Unicode's Cc (every control: C0, DEL and C1, cf. RFC 9839 "problematic code points") and Zl/Zp
# (line breaks too): none belongs in a name, all of them can forge lines in logs. The three
# categories as one class (tests/leerid/test_profile.py checks it against unicodedata for every code
# point): scanned in C, not character by character.
_BREAKS_A_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MAX_HISTORY = 100


@dataclass(frozen=True, slots=True)
class LeerIdProfile:
    """The protocol's fields for one login, and nothing else."""

    account_uuid: str
    leer_id_uuid: str | None
    history_account_uuids: tuple[str, ...]
    given_name: str
    family_name: str
    school_codes: tuple[str, ...]
    school_names: tuple[str, ...]

    @property
    def identified(self) -> bool:
        return self.leer_id_uuid is not None

    @property
    def all_account_uuids(self) -> tuple[str, ...]:
        """The current account first, then the historical ones, without duplicates."""
        seen = dict.fromkeys((self.account_uuid, *self.history_account_uuids))
        return tuple(seen)

    # The protocol's field names, for the privacy log ("which fields were received").
    FIELDS = ("account_uuid", "leer_id_uuid", "history_account_uuids", "given_name", "family_name", "school")


def _strings(raw: Any, name: str) -> list[str]:
    """String or array of strings → list of non-empty stripped strings."""
    if raw is None:
        return []
    values = raw if isinstance(raw, list) else [raw]
    out = []
    for value in values:
        if not isinstance(value, str):
            raise UpstreamError("datastore_shape", f"{name} is not a string or array of strings")
        value = value.strip()
        if value:
            out.append(value)
    return out


def _one(raw: Any, name: str, *, required: bool) -> str | None:
    values = list(dict.fromkeys(_strings(raw, name)))
    if len(values) > 1:
        raise UpstreamError("datastore_shape", f"{name} has {len(values)} different values")
    if not values:
        if required:
            raise UpstreamError("datastore_shape", f"{name} is missing")
        return None
    return values[0]


def _key(raw: Any, name: str, *, required: bool) -> str | None:
    value = _one(raw, name, required=required)
    if value is not None and not _KEY.match(value):
        raise UpstreamError("datastore_shape", f"{name} is not a valid identifier")
    return value.lower() if value is not None else None


def _name(raw: Any, name: str) -> str:
    value = _one(raw, name, required=True)
    assert value is not None
    if len(value) > _MAX_NAME or _BREAKS_A_LINE.search(value):
        raise UpstreamError("datastore_shape", f"{name} is not a plausible name")
    return value


def normalise(claims: Mapping[str, Any], mapping: Mapping[str, str]) -> LeerIdProfile:
    """Build the profile from the datastore's JSON using the operator's attribute mapping."""
    account = _key(claims.get(mapping["account_uuid"]), "account_uuid", required=True)
    assert account is not None
    leer_id = _key(claims.get(mapping["leer_id_uuid"]), "leer_id_uuid", required=False)
    history_raw = _strings(claims.get(mapping["history_account_uuids"]), "history_account_uuids")
    if len(history_raw) > _MAX_HISTORY:
        raise UpstreamError("datastore_shape", "history_account_uuids is implausibly long")
    history = []
    for value in history_raw:
        if not _KEY.match(value):
            raise UpstreamError("datastore_shape", "history_account_uuids has an invalid identifier")
        value = value.lower()
        if value != account and value not in history:
            history.append(value)
    schools = list(dict.fromkeys(_strings(claims.get(mapping["school_code"]), "school_code")))
    for code in schools:
        if not _SCHOOL.match(code):
            raise UpstreamError("datastore_shape", "school_code is not an instellingsnummer")
    # A school name is shown to the pupil and stored: the same hygiene as a person's name.
    school_names = [
        _BREAKS_A_LINE.sub("", n[:_MAX_NAME])
        for n in _strings(claims.get(mapping["school_name"]), "school_name")
    ]
    return LeerIdProfile(
        account_uuid=account,
        leer_id_uuid=leer_id,
        history_account_uuids=tuple(history),
        given_name=_name(claims.get(mapping["given_name"]), "given_name"),
        family_name=_name(claims.get(mapping["family_name"]), "family_name"),
        school_codes=tuple(schools),
        school_names=tuple(school_names),
    )
