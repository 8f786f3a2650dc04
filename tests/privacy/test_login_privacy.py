"""A full login, end to end, against what the protocol allows (art. 3, 4) and what must never be
written down (no personal data in application logs; GDPR art. 5(1)(c) data minimisation)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from sqlalchemy import select

from leerid_gateway.admin import service as admin
from leerid_gateway.db import create_session_factory, unit_of_work, utcnow
from leerid_gateway.demo.provider import DEMO_PUPILS
from leerid_gateway.identity.models import Identity, IdentityEvent
from leerid_gateway.kit.crypto import Hasher
from leerid_gateway.leerid.profile import LeerIdProfile
from leerid_gateway.privacy.models import PrivacyLogEntry
from tests.e2e.conftest import World, WorldFactory
from tests.privacy.factories import THREE_YEARS, all_rows_text, count, make_identity

LOTTE = next(p for p in DEMO_PUPILS if p.key == "lotte")
NOAH = next(p for p in DEMO_PUPILS if p.key == "noah")
NOAH_TEMP = next(p for p in DEMO_PUPILS if p.key == "noah-temp")
# What the stand-in provider sends beyond the protocol's fields; it must be dropped at the edge.
NOT_IN_THE_PROTOCOL = {"email": LOTTE.claims["email"], "ov_rol": LOTTE.claims["ov_rol"]}
# Protocol art. 3: names, leer_id_uuid, account_uuid, historical account_uuids, enrolment.
PROTOCOL_COLUMNS = {
    "id",
    "sub",
    "leer_id_uuid",
    "given_name",
    "family_name",
    "school_code",
    "school_name",
    "created_at",
    "last_login_at",
}


def leerid_keys(*pupils: object) -> set[str]:
    keys: set[str] = set()
    for pupil in pupils:
        claims = pupil.claims  # type: ignore[attr-defined]
        for name in ("ov_account_uuid", "ov_leerid_uuid", "ov_historiek_account_uuid"):
            value = claims.get(name)
            keys.update(value if isinstance(value, list) else [value] if value else [])
    return keys


@pytest.fixture
def every_log_line(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, uvicorn's included (they do not propagate to the root by default)."""
    names = ["", *logging.root.manager.loggerDict]
    previous = {name: logging.getLogger(name).level for name in names}
    uvicorn = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    for logger in uvicorn:
        logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        for logger in uvicorn:
            logger.removeHandler(caplog.handler)
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        lines.append(repr(record.__dict__))
    return "\n".join(lines)


async def staff_key(world: World, name: str, role: str) -> str:
    hasher = Hasher(world.settings.secret_key.get_secret_value(), admin.HASH_PURPOSE)
    async with unit_of_work(create_session_factory(world.db)) as db:
        return (await admin.add_staff(db, hasher, name, role)).api_key


async def test_a_full_login_and_a_staff_session_store_and_log_only_the_protocols_fields(
    world: World, every_log_line: pytest.LogCaptureFixture
) -> None:
    """Protocol art. 3: only these fields; everything else dropped at the edge, never stored or logged."""
    key = await staff_key(world, "an.peeters", "access-control")
    assert world.login("lotte").status_code == 303
    assert world.browser.token(world.url).status_code == 200
    assert world.browser.http.get(f"{world.url}/me").json()["given_name"] == "Lotte"
    staff = httpx.Client(base_url=world.url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    found = staff.post(
        "/admin/identities/search",
        json={"account_uuid": LOTTE.claims["ov_account_uuid"], "purpose": "vraag van de school over toegang"},
    )
    assert found.status_code == 200, found.text
    exported = staff.get(
        f"/admin/identities/{found.json()['sub']}/export", params={"purpose": "inzageverzoek van de leerling"}
    )
    assert exported.status_code == 200
    staff.close()
    await asyncio.sleep(0.2)  # the access-log line of the last request is written after the response
    logs = logged_text(every_log_line)  # before this test reads the database itself

    assert "SELECT" in logs  # the capture works: even SQL statements were logged
    # (ov_rol's value "leerling" is a common word, e.g. in the scope "ov_leerling": the store check covers it)
    for secret in {"Lotte", "Peeters", *leerid_keys(LOTTE), NOT_IN_THE_PROTOCOL["email"]}:
        assert secret not in logs, f"{secret!r} reached a log line"
    stored = await all_rows_text(world.db)
    for value in NOT_IN_THE_PROTOCOL.values():
        assert f"'{value}'" not in stored
    assert "email" not in stored
    assert set(Identity.__table__.columns.keys()) == PROTOCOL_COLUMNS
    async with world.db.connect() as conn:
        entries = (await conn.execute(select(PrivacyLogEntry.__table__))).all()
    received = next(e for e in entries if e.action == "login.received")
    assert set(received.fields) <= set(LeerIdProfile.FIELDS)
    for entry in entries:  # the privacy log names the pupil only by sub
        assert not {"Lotte", "Peeters"} & set(repr(tuple(entry)).replace("'", " ").split())
        assert not leerid_keys(LOTTE) & set(json.dumps(list(entry)[1:], default=str).split('"'))


async def test_each_login_overwrites_and_no_history_is_kept_anywhere(world: World) -> None:
    """Protocol art. 3: "Enkel de gegevens op het moment van de laatste aanmelding worden bewaard"."""
    world.login("lotte")
    renamed = type(LOTTE)(
        key=LOTTE.key,
        label=LOTTE.label,
        sub=LOTTE.sub,
        claims={**LOTTE.claims, "given_name": "Lotta", "family_name": "Pieters", "ov_orgnaam": "Nieuwe naam"},
    )
    world.provider.add_pupil(renamed)
    world.browser.http.cookies.clear()
    assert world.login("lotte").status_code == 303

    identities = await world.rows(Identity)
    assert [(i.given_name, i.family_name, i.school_name) for i in identities] == [
        ("Lotta", "Pieters", "Nieuwe naam")
    ]
    stored = await all_rows_text(world.db)
    for old in ("Lotte", "Peeters"):  # (the school's old name stays in partner_schools, our own table)
        assert old not in stored, f"the earlier login's {old!r} is still stored"
    assert [e.type for e in await world.rows(IdentityEvent)] == ["identity.created"]


async def test_tokens_and_events_carry_the_opaque_sub_never_a_leerid_key(world: World) -> None:
    """Protocol art. 4: the data are not passed on; eTeacher sees an opaque sub only."""
    world.login("noah-temp")
    world.browser.http.cookies.clear()
    world.login("noah")  # identification: created + identified events
    token = world.browser.token(world.url).json()["access_token"]
    client_id, secret = world.internal_client
    feed = httpx.get(f"{world.url}/events", auth=(client_id, secret)).json()
    introspected = httpx.post(
        f"{world.url}/introspect", data={"token": token}, auth=(client_id, secret)
    ).json()

    keys = leerid_keys(NOAH, NOAH_TEMP)
    assert len(keys) == 3
    claims = jwt.decode(token, options={"verify_signature": False})
    events = await world.rows(IdentityEvent)
    assert [e.type for e in events] == ["identity.created", "identity.identified"]
    assert [e["type"] for e in feed["events"]] == ["identity.created", "identity.identified"]
    for carrier in (json.dumps(claims), json.dumps(feed), json.dumps(introspected), repr(events)):
        for value in (*keys, "Noah", "Janssens"):
            assert value not in carrier
    assert {e.sub for e in events} == {identity.sub for identity in await world.rows(Identity)}
    assert claims["sub"] == str(events[0].sub)


async def test_the_service_purges_by_itself(make_world: WorldFactory) -> None:
    """Protocol art. 3: the daily purge runs inside the service (here every second)."""
    world: World = await make_world(purge_interval=1)
    old = await make_identity(world.db, last_login_at=utcnow() - THREE_YEARS - dt.timedelta(hours=1))
    deadline = time.monotonic() + 15
    while await count(world.db, Identity) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await count(world.db, Identity) == 0
    assert [(e.type, e.sub) for e in await world.rows(IdentityEvent)] == [("identity.deleted", old.sub)]
