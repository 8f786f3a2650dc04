"""Data quality (protocol art. 7): reports made by staff and by reconciliation, listed, exported for
DOV in DOV's own keys, marked handled — every read and disclosure in the privacy log."""

from __future__ import annotations

import uuid

from tests.admin.helpers import PURPOSE, log_entries, staff_client
from tests.e2e.conftest import World
from tests.privacy.factories import make_report

LOTTE_ACCOUNT = "3f1c2b7e-8a4d-4c6e-9b1f-2d7a5e8c0b41"
LOTTE_LEERID = "c9e4a1d2-6b3f-4e8a-a7c5-1f0d9b2e6a73"


async def test_reports_are_made_listed_exported_for_dov_and_handled(world: World) -> None:
    world.login("lotte")
    sub = world.browser.http.get(f"{world.url}/me").json()["sub"]
    automatic = await make_report(world.db, uuid.UUID(sub))  # as reconciliation files them
    staff = await staff_client(world, "an.peeters", "access-control")

    unknown = staff.post(
        "/admin/data-quality-reports",
        json={
            "kind": "wrong_name",
            "subs": [str(uuid.uuid4())],
            "detail": "naam klopt niet",
            "purpose": PURPOSE,
        },
    )
    assert unknown.status_code == 422
    made = staff.post(
        "/admin/data-quality-reports",
        json={
            "kind": "wrong_name",
            "subs": [sub],
            "detail": "De leerling meldt dat de voornaam verkeerd gespeld is.",
            "purpose": "melding van de leerling zelf",
        },
    )
    assert made.status_code == 201, made.text
    report_id = made.json()["id"]

    listed = staff.get("/admin/data-quality-reports", params={"purpose": PURPOSE})
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json()] == [automatic, report_id]
    assert staff.get("/admin/data-quality-reports").status_code == 422  # no purpose, no read

    export = staff.get(
        "/admin/data-quality-reports/export", params={"purpose": "maandelijkse melding aan DOV"}
    )
    assert export.status_code == 200
    reports = export.json()["reports"]
    assert [r["id"] for r in reports] == [automatic, report_id]
    assert reports[1]["pupils"] == [{"leer_id_uuid": LOTTE_LEERID, "account_uuids": [LOTTE_ACCOUNT]}]
    assert sub not in export.text and "Lotte" not in export.text  # DOV's keys only, no names

    handled = staff.post(f"/admin/data-quality-reports/{report_id}/handled")
    assert handled.status_code == 200
    assert handled.json()["handled_at"] is not None
    assert staff.post("/admin/data-quality-reports/999999/handled").status_code == 404
    still_open = staff.get("/admin/data-quality-reports", params={"purpose": PURPOSE, "status": "open"})
    assert [r["id"] for r in still_open.json()] == [automatic]

    actions = [(e.action, str(e.sub)) for e in await log_entries(world) if e.actor == "staff:an.peeters"]
    assert actions == [
        ("data_quality.reported", sub),
        ("data_quality.read", sub),
        ("data_quality.exported", sub),
        ("data_quality.handled", sub),
        ("data_quality.read", sub),
    ]
