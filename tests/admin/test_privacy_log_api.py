"""The privacy log for auditors (protocol art. 6) and the access report that supports a breach
notification (protocol art. 9, GDPR art. 33): who touched which pupils' data, when."""

from __future__ import annotations

import datetime as dt

from tests.admin.helpers import PURPOSE, log_entries, staff_client
from tests.e2e.conftest import World
from tests.privacy.factories import tamper


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


async def test_the_access_report_names_who_touched_which_pupils_in_a_window(world: World) -> None:
    world.login("lotte")
    lotte = world.browser.http.get(f"{world.url}/me").json()["sub"]
    world.browser.http.cookies.clear()
    world.login("noah")
    noah = world.browser.http.get(f"{world.url}/me").json()["sub"]
    an = await staff_client(world, "an.peeters", "access-control")
    before = dt.datetime.now(dt.UTC)
    assert an.get(f"/admin/identities/{lotte}", params={"purpose": PURPOSE}).status_code == 200
    assert an.get(f"/admin/identities/{lotte}", params={"purpose": PURPOSE}).status_code == 200
    after = dt.datetime.now(dt.UTC)
    auditor = await staff_client(world, "jan.audit", "auditor")

    answer = auditor.get(
        "/admin/privacy-log/access-report",
        params={"from": iso(before), "to": iso(after), "purpose": "onderzoek naar een mogelijk datalek"},
    )

    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["pupils"] == 1
    assert [a["actor"] for a in report["actors"]] == ["staff:an.peeters"]
    [line] = report["actors"][0]["accesses"]
    assert (line["sub"], line["action"], line["count"]) == (lotte, "identity.looked_up", 2)
    assert noah not in answer.text

    whole_day = auditor.get(
        "/admin/privacy-log/access-report",
        params={"from": iso(before - dt.timedelta(hours=1)), "to": iso(after), "purpose": PURPOSE},
    ).json()
    assert {a["actor"] for a in whole_day["actors"]} == {"system", "staff:an.peeters"}
    assert whole_day["pupils"] == 2
    naive = auditor.get(
        "/admin/privacy-log/access-report",
        params={"from": "2026-01-01T00:00:00", "to": iso(after), "purpose": PURPOSE},
    )
    assert naive.status_code == 422
    reads = await log_entries(world, "privacy_log.read")
    assert [(e.actor, e.purpose) for e in reads] == [
        ("staff:jan.audit", "onderzoek naar een mogelijk datalek"),
        ("staff:jan.audit", PURPOSE),
    ]


async def test_auditors_page_through_the_log_and_check_its_chain(world: World) -> None:
    world.login("lotte")
    auditor = await staff_client(world, "jan.audit", "auditor")

    page = auditor.get("/admin/privacy-log", params={"purpose": PURPOSE, "limit": 1})
    assert page.status_code == 200
    body = page.json()
    assert [e["action"] for e in body["entries"]] == ["login.received"]
    assert body["entries"][0]["prev_hash"] == "0" * 64
    following = auditor.get(
        "/admin/privacy-log", params={"purpose": PURPOSE, "after": body["next_cursor"]}
    ).json()
    assert [e["action"] for e in following["entries"]] == ["privacy_log.read"]  # the first read, logged

    assert auditor.get("/admin/privacy-log/verify").json()["ok"] is True
    await tamper(world.db, "UPDATE privacy_log SET purpose = 'niets aan de hand' WHERE id = :id", {"id": 1})
    broken = auditor.get("/admin/privacy-log/verify").json()
    assert (broken["ok"], broken["broken_id"], broken["reason"]) == (False, 1, "was altered")
