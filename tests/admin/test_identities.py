"""Staff reading pupils' data for a stated purpose (protocol art. 4, 6) and the data subject's rights:
access (GDPR art. 15) and erasure (GDPR art. 17)."""

from __future__ import annotations

import httpx

from leerid_gateway.identity.models import AccountAlias, Identity, IdentityEvent
from leerid_gateway.sessions.models import BrowserSession
from tests.admin.helpers import PURPOSE, log_entries, staff_client
from tests.e2e.conftest import World

LOTTE_ACCOUNT = "3f1c2b7e-8a4d-4c6e-9b1f-2d7a5e8c0b41"
LOTTE_LEERID = "c9e4a1d2-6b3f-4e8a-a7c5-1f0d9b2e6a73"


async def test_a_lookup_needs_a_purpose_and_is_written_to_the_privacy_log(world: World) -> None:
    world.login("lotte")
    staff = await staff_client(world, "an.peeters", "access-control")

    no_purpose = staff.post("/admin/identities/search", json={"account_uuid": LOTTE_ACCOUNT})
    too_short = staff.post(
        "/admin/identities/search", json={"account_uuid": LOTTE_ACCOUNT, "purpose": "   kort   "}
    )
    two_keys = staff.post(
        "/admin/identities/search",
        json={"account_uuid": LOTTE_ACCOUNT, "leer_id_uuid": LOTTE_LEERID, "purpose": PURPOSE},
    )
    assert [r.status_code for r in (no_purpose, too_short, two_keys)] == [422, 422, 422]
    assert no_purpose.headers["content-type"] == "application/problem+json"
    assert await log_entries(world, "identity.looked_up") == []

    by_account = staff.post(
        "/admin/identities/search",
        json={"account_uuid": LOTTE_ACCOUNT.upper(), "purpose": PURPOSE},
        headers={"X-Request-ID": "lookup-1"},
    )
    assert by_account.status_code == 200, by_account.text
    assert by_account.headers["cache-control"] == "no-store"
    body = by_account.json()
    assert (body["given_name"], body["family_name"], body["leer_id_uuid"]) == (
        "Lotte",
        "Peeters",
        LOTTE_LEERID,
    )
    assert body["account_uuids"] == [LOTTE_ACCOUNT]
    by_leerid = staff.post(
        "/admin/identities/search", json={"leer_id_uuid": LOTTE_LEERID, "purpose": PURPOSE}
    )
    by_sub = staff.get(f"/admin/identities/{body['sub']}", params={"purpose": PURPOSE})
    assert by_leerid.json() == body == by_sub.json()

    entries = await log_entries(world, "identity.looked_up")
    assert len(entries) == 3
    first = entries[0]
    assert (first.actor, str(first.sub), first.purpose, first.request_id) == (
        "staff:an.peeters",
        body["sub"],
        PURPOSE,
        "lookup-1",
    )
    assert set(first.fields) == {"given_name", "family_name", "leer_id_uuid", "account_uuids", "school"}


async def test_an_unknown_pupil_is_404(world: World) -> None:
    staff = await staff_client(world, "an.peeters", "access-control")
    answer = staff.post("/admin/identities/search", json={"leer_id_uuid": "nobody", "purpose": PURPOSE})
    assert answer.status_code == 404
    assert answer.json()["title"] == "Not found"


async def test_the_export_holds_everything_about_the_pupil_and_no_secret(world: World) -> None:
    """GDPR art. 15: identity, aliases, sessions (no secrets), events, reports, privacy-log entries."""
    world.login("noah-temp")
    world.browser.http.cookies.clear()
    world.login("noah")
    sub = world.browser.http.get(f"{world.url}/me").json()["sub"]
    staff = await staff_client(world, "an.peeters", "access-control")

    answer = staff.get(f"/admin/identities/{sub}/export", params={"purpose": "inzageverzoek van de ouders"})

    assert answer.status_code == 200, answer.text
    export = answer.json()
    assert export["identity"]["sub"] == sub
    assert sorted(export["identity"]["account_uuids"]) == sorted(
        ["7d2e9f40-1c5b-4a3e-8f6d-0b9c2a4e7d15", "e5a8c3b1-4f7d-4d2a-9c0e-6b1f8a3d5c27"]
    )
    assert len(export["sessions"]) == 2
    assert all(
        set(s) == {"sid", "created_at", "last_seen_at", "absolute_expires_at", "revoked_at"}
        for s in export["sessions"]
    )
    assert [e["type"] for e in export["events"]] == ["identity.created", "identity.identified"]
    assert [e["action"] for e in export["privacy_log"]] == ["login.received", "login.received"]
    assert export["data_quality_reports"] == []
    exported = await log_entries(world, "identity.exported")
    assert [(e.actor, str(e.sub), e.purpose) for e in exported] == [
        ("staff:an.peeters", sub, "inzageverzoek van de ouders")
    ]


async def test_erasure_deletes_the_pupil_tells_eteacher_and_ends_their_tokens(world: World) -> None:
    """GDPR art. 17: the pupil and everything attached go now; `identity.deleted` for eTeacher."""
    world.login("lotte")
    token = world.browser.token(world.url).json()["access_token"]
    sub = world.browser.http.get(f"{world.url}/me").json()["sub"]
    staff = await staff_client(world, "an.peeters", "access-control")

    answer = staff.delete(
        f"/admin/identities/{sub}", params={"purpose": "verzoek tot wissing van de leerling"}
    )

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"sub": sub, "aliases": 1, "sessions": 1, "data_quality_reports": 0}
    assert await world.count(Identity) == 0
    assert await world.count(AccountAlias) == 0
    assert await world.count(BrowserSession) == 0
    assert [(e.type, str(e.sub)) for e in await world.rows(IdentityEvent)][-1] == ("identity.deleted", sub)
    erased = await log_entries(world, "identity.erased")
    assert [(e.actor, str(e.sub)) for e in erased] == [("staff:an.peeters", sub)]
    client_id, secret = world.internal_client
    introspected = httpx.post(f"{world.url}/introspect", data={"token": token}, auth=(client_id, secret))
    assert introspected.json() == {"active": False}
    assert world.browser.http.get(f"{world.url}/me").status_code == 401
    assert staff.delete(f"/admin/identities/{sub}", params={"purpose": PURPOSE}).status_code == 404
