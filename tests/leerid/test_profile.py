"""LeerID attributes normalised at the edge (issue 2 §3, protocol art. 3): shapes, refusals, mapping."""

from __future__ import annotations

import sys
import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leerid_gateway.kit.errors import UpstreamError
from leerid_gateway.leerid.profile import _BREAKS_A_LINE, LeerIdProfile, normalise
from leerid_gateway.settings import DEFAULT_ATTRIBUTE_MAPPING

ACCOUNT = "3f2a1b7c-0000-4000-8000-000000000001"
LEERID = "9c8d7e6f-0000-4000-8000-000000000002"
OLD = "11111111-0000-4000-8000-000000000003"


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ov_account_uuid": ACCOUNT,
        "ov_leerid_uuid": LEERID,
        "ov_historiek_account_uuid": [OLD],
        "given_name": "Lotte",
        "family_name": "Peeters",
        "ov_orgcode": "054321",
        "ov_orgnaam": "Sint-Jozefscollege",
    }
    for key, value in overrides.items():
        if value is _ABSENT:
            base.pop(key, None)
        else:
            base[key] = value
    return base


_ABSENT = object()


def parse(raw: dict[str, Any]) -> LeerIdProfile:
    return normalise(raw, DEFAULT_ATTRIBUTE_MAPPING)


def test_every_field_as_plain_strings() -> None:
    profile = parse(claims(ov_historiek_account_uuid=OLD))
    assert profile == LeerIdProfile(
        account_uuid=ACCOUNT,
        leer_id_uuid=LEERID,
        history_account_uuids=(OLD,),
        given_name="Lotte",
        family_name="Peeters",
        school_codes=("054321",),
        school_names=("Sint-Jozefscollege",),
    )
    assert profile.identified


def test_every_field_as_one_element_array_gives_the_same_profile() -> None:
    as_strings = parse(claims(ov_historiek_account_uuid=OLD))
    as_arrays = parse({key: [value] if isinstance(value, str) else value for key, value in claims().items()})
    assert as_arrays == as_strings


@pytest.mark.parametrize("value", [_ABSENT, None, "", "   ", [], [""], ["  "]])
def test_missing_or_empty_leerid_uuid_is_a_temporary_account(value: Any) -> None:
    profile = parse(claims(ov_leerid_uuid=value))
    assert profile.leer_id_uuid is None
    assert not profile.identified


def test_history_is_lowercased_deduplicated_and_without_the_current_account() -> None:
    history = [OLD.upper(), OLD, ACCOUNT.upper(), " " + OLD + " ", "22222222-aaaa-4000-8000-00000000000F"]
    profile = parse(claims(ov_historiek_account_uuid=history))
    assert profile.history_account_uuids == (OLD, "22222222-aaaa-4000-8000-00000000000f")
    assert profile.all_account_uuids == (ACCOUNT, OLD, "22222222-aaaa-4000-8000-00000000000f")


def test_history_as_a_single_string() -> None:
    assert parse(claims(ov_historiek_account_uuid=OLD)).history_account_uuids == (OLD,)


def test_account_and_leerid_keys_are_lowercased() -> None:
    profile = parse(claims(ov_account_uuid=ACCOUNT.upper(), ov_leerid_uuid=[LEERID.upper()]))
    assert (profile.account_uuid, profile.leer_id_uuid) == (ACCOUNT, LEERID)


def test_claims_outside_the_protocol_are_dropped() -> None:
    raw = claims(email="lotte@example.org", birthdate="2010-01-01", ov_rijksregisternummer="10010112345")
    profile = parse(raw)
    values = {str(getattr(profile, name)) for name in LeerIdProfile.__slots__}
    assert not any("lotte@" in v or "2010-01-01" in v or "10010112345" in v for v in values)
    assert set(LeerIdProfile.__slots__) == {
        "account_uuid",
        "leer_id_uuid",
        "history_account_uuids",
        "given_name",
        "family_name",
        "school_codes",
        "school_names",
    }


def test_repeated_identical_value_in_a_single_valued_field_is_accepted() -> None:
    assert parse(claims(ov_account_uuid=[ACCOUNT, ACCOUNT])).account_uuid == ACCOUNT


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ov_account_uuid", [ACCOUNT, OLD]),
        ("ov_leerid_uuid", [LEERID, OLD]),
        ("given_name", ["Lotte", "Anna"]),
        ("family_name", ["Peeters", "Janssens"]),
    ],
)
def test_several_values_for_a_single_valued_field_are_refused(field: str, value: list[str]) -> None:
    with pytest.raises(UpstreamError) as caught:
        parse(claims(**{field: value}))
    assert caught.value.kind == "datastore_shape"
    assert "2 different values" in caught.value.detail


@pytest.mark.parametrize(
    "field",
    [
        "ov_account_uuid",
        "ov_leerid_uuid",
        "ov_historiek_account_uuid",
        "given_name",
        "ov_orgcode",
        "ov_orgnaam",
    ],
)
@pytest.mark.parametrize("value", [42, 1.5, True, {"value": "x"}, [["nested"]], ["ok", 7], [{"a": 1}]])
def test_wrong_types_are_refused(field: str, value: Any) -> None:
    with pytest.raises(UpstreamError) as caught:
        parse(claims(**{field: value}))
    assert caught.value.kind == "datastore_shape"


@pytest.mark.parametrize("field", ["ov_account_uuid", "given_name", "family_name"])
@pytest.mark.parametrize("value", [_ABSENT, None, "", [], ["   "]])
def test_missing_required_fields_are_refused(field: str, value: Any) -> None:
    with pytest.raises(UpstreamError, match="missing"):
        parse(claims(**{field: value}))


@pytest.mark.parametrize(
    "key", ["-leading-dash", "with space", "a/b", "x" * 65, "uuid;drop", "ü-non-ascii", "a\nb"]
)
@pytest.mark.parametrize("field", ["ov_account_uuid", "ov_leerid_uuid", "ov_historiek_account_uuid"])
def test_implausible_identifiers_are_refused(field: str, key: str) -> None:
    with pytest.raises(UpstreamError, match="identifier"):
        parse(claims(**{field: key}))


@pytest.mark.parametrize(
    "name",
    [
        "Lot\x00te",
        "Lotte\nPeeters",
        "Lot\rte",
        "Lot\tte",
        "Lot\x1bte",  # ESC: terminal escape sequences in logs
        "Lot\x7fte",  # DEL
        "Lot\x85te",  # NEL, a C1 control and a line break for str.splitlines()
        "Lot\x9bte",  # CSI, the C1 escape introducer
        "Lot\u2028te",  # LINE SEPARATOR
        "L" * 201,
    ],
)
@pytest.mark.parametrize("field", ["given_name", "family_name"])
def test_names_with_control_characters_or_absurd_length_are_refused(field: str, name: str) -> None:
    with pytest.raises(UpstreamError, match="plausible name"):
        parse(claims(**{field: name}))


@pytest.mark.parametrize("name", ["Zoë", "Jean-Luc", "Van den Broeck", "O'Neill", "Çelik", "李", "L" * 200])
def test_ordinary_names_are_kept_as_sent(name: str) -> None:
    assert parse(claims(given_name=f"  {name} ")).given_name == name


def test_school_codes_must_be_instellingsnummers_and_are_deduplicated() -> None:
    assert parse(claims(ov_orgcode=["054321", "054321", "012345"])).school_codes == ("054321", "012345")
    with pytest.raises(UpstreamError, match="instellingsnummer"):
        parse(claims(ov_orgcode="05 4321"))


def test_absent_schools_give_empty_tuples() -> None:
    profile = parse(claims(ov_orgcode=_ABSENT, ov_orgnaam=_ABSENT))
    assert (profile.school_codes, profile.school_names) == ((), ())


def test_history_longer_than_a_hundred_entries_is_refused() -> None:
    history = [f"acc-{i}" for i in range(101)]
    with pytest.raises(UpstreamError, match="implausibly long"):
        parse(claims(ov_historiek_account_uuid=history))


def test_custom_attribute_mapping_reads_the_renamed_field_and_ignores_the_default_name() -> None:
    mapping = {**DEFAULT_ATTRIBUTE_MAPPING, "account_uuid": "acm_account", "given_name": "voornaam"}
    raw = claims(ov_account_uuid="not-the-one", given_name="Not used")
    raw.update({"acm_account": [ACCOUNT], "voornaam": "Lotte"})
    profile = normalise(raw, mapping)
    assert profile.account_uuid == ACCOUNT
    assert profile.given_name == "Lotte"
    with pytest.raises(UpstreamError, match="account_uuid is missing"):
        normalise(claims(), mapping)


# --- property: normalise either yields a coherent profile or an UpstreamError ------------------

_KEYS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,20}\Z")
_ANY_TEXT = st.text(max_size=30)
_SCALAR = st.one_of(_KEYS, _ANY_TEXT, st.integers(), st.none(), st.booleans())
_VALUE = st.one_of(_SCALAR, st.lists(st.one_of(_KEYS, _ANY_TEXT, st.lists(_KEYS, max_size=2)), max_size=6))
_CLAIMS = st.dictionaries(
    st.sampled_from([*DEFAULT_ATTRIBUTE_MAPPING.values(), "email", "sub"]), _VALUE, max_size=9
)


@given(
    _CLAIMS,
    st.one_of(_KEYS, st.lists(_KEYS, min_size=1, max_size=3)),
    st.lists(_KEYS, max_size=8),
)
def test_normalise_returns_a_coherent_profile_or_an_upstream_error(
    raw: dict[str, Any], account: Any, history: list[str]
) -> None:
    raw = {**raw}
    # Bias towards valid logins so that the success branch is exercised, not only refusals.
    raw.setdefault("ov_account_uuid", account)
    raw.setdefault(
        "ov_historiek_account_uuid", [*history, *(account if isinstance(account, list) else [account])]
    )
    raw.setdefault("given_name", "Lotte")
    raw.setdefault("family_name", "Peeters")
    try:
        profile = parse(raw)
    except UpstreamError:
        return
    uuids = profile.all_account_uuids
    assert uuids[0] == profile.account_uuid
    assert len(uuids) == len(set(uuids))
    assert profile.account_uuid not in profile.history_account_uuids
    assert all(u == u.lower() for u in uuids)


def test_control_characters_are_stripped_from_school_names() -> None:
    claims = {
        "ov_account_uuid": "a1",
        "given_name": "A",
        "family_name": "B",
        "ov_orgcode": "012345",
        "ov_orgnaam": "Sint-Jozef\x1b[31m\ncollege\u2028",
    }
    profile = normalise(claims, DEFAULT_ATTRIBUTE_MAPPING)
    assert profile.school_names == ("Sint-Jozef[31mcollege",)


def test_the_line_breaking_class_is_unicodes_cc_zl_and_zp_for_every_code_point() -> None:
    for point in range(sys.maxunicode + 1):
        ch = chr(point)
        breaks = unicodedata.category(ch) in ("Cc", "Zl", "Zp")
        assert bool(_BREAKS_A_LINE.search(ch)) is breaks, f"U+{point:04X}"
