"""Only staff charged with access control (protocol art. 4): /admin is closed by default, opens to a
staff API key only (RFC 6750 bearer), and a missing role is refused (403) and logged (art. 6)."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from leerid_gateway.admin.models import StaffMember
from leerid_gateway.kit.crypto import Hasher
from leerid_gateway.openapi import document
from tests.admin.helpers import PURPOSE, log_entries, staff_client, staff_key
from tests.e2e.conftest import World
from tests.test_cli import SECRET, run_cli

ADMIN_ROUTES = sorted(
    (method.upper(), path)
    for path, item in document()["paths"].items()
    if path.startswith("/admin")
    for method in item
)


def test_there_are_admin_routes() -> None:
    assert len(ADMIN_ROUTES) >= 10


async def test_every_admin_route_is_closed_without_a_staff_key(world: World) -> None:
    """STYLE "Authenticated by default": the router depends on require_staff; no route opts out."""
    for method, path in ADMIN_ROUTES:
        url = world.url + path.replace("{sub}", "5dbebdea-ac89-4f8d-9e78-3baf0b862809").replace(
            "{report_id}", "1"
        )
        answer = httpx.request(method, url, params={"purpose": PURPOSE})
        assert answer.status_code == 401, (method, path)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["www-authenticate"].startswith('Bearer realm="leerid-gateway admin"')


async def test_pupil_sessions_and_eteacher_credentials_do_not_open_admin(world: World) -> None:
    world.login("lotte")
    token = world.browser.token(world.url).json()["access_token"]
    url = f"{world.url}/admin/privacy-log"
    assert world.browser.http.get(url, params={"purpose": PURPOSE}).status_code == 401  # session cookie
    assert (
        httpx.get(url, params={"purpose": PURPOSE}, headers={"Authorization": f"Bearer {token}"}).status_code
        == 401
    )
    assert httpx.get(url, params={"purpose": PURPOSE}, auth=world.internal_client).status_code == 401
    wrong = httpx.get(
        url, params={"purpose": PURPOSE}, headers={"Authorization": "Bearer lgk_not-a-real-key"}
    )
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]


async def test_a_staff_member_without_the_role_is_refused_and_the_attempt_logged(world: World) -> None:
    auditor = await staff_client(world, "jan.audit", "auditor")
    refused = auditor.post(
        "/admin/identities/search",
        json={"account_uuid": "3f1c2b7e-8a4d-4c6e-9b1f-2d7a5e8c0b41", "purpose": PURPOSE},
        headers={"X-Request-ID": "refused-1"},
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["title"] == "Forbidden"

    access = await staff_client(world, "an.toegang", "access-control")
    assert access.get("/admin/privacy-log", params={"purpose": PURPOSE}).status_code == 403

    entries = await log_entries(world, "staff.refused")
    assert [(e.actor, e.data["route"], e.data["role"]) for e in entries] == [
        ("staff:jan.audit", "/admin/identities/search", "auditor"),
        ("staff:an.toegang", "/admin/privacy-log", "access-control"),
    ]
    assert entries[0].request_id == "refused-1"
    assert entries[0].sub is None  # the refused call learned nothing, and names no one


async def test_a_revoked_staff_key_stops_working(world: World, database_url: str) -> None:
    key = await staff_key(world, "oud.personeel", "auditor")
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{world.url}/admin/privacy-log/verify", headers=headers).status_code == 200
    revoked = run_cli(database_url, "staff", "revoke", "oud.personeel")
    assert revoked.returncode == 0, revoked.stderr
    assert httpx.get(f"{world.url}/admin/privacy-log/verify", headers=headers).status_code == 401


async def test_staff_add_prints_the_key_once_and_stores_only_its_hmac(
    world: World, database_url: str
) -> None:
    made = run_cli(database_url, "staff", "add", "an.peeters", "--role", "access-control", "--json")
    assert made.returncode == 0, made.stderr
    creds = json.loads(made.stdout)
    assert creds["api_key"].startswith("lgk_")
    assert (creds["name"], creds["role"]) == ("an.peeters", "access-control")
    async with world.db.connect() as conn:
        row = (
            await conn.execute(select(StaffMember.__table__).where(StaffMember.name == "an.peeters"))
        ).one()
    assert creds["api_key"].encode() not in row.key_hash
    assert Hasher(SECRET, "staff-key").matches(creds["api_key"], row.key_hash)
    listed = run_cli(database_url, "staff", "list")
    assert "an.peeters\taccess-control\tactive" in listed.stdout
    assert creds["api_key"] not in listed.stdout
    assert run_cli(database_url, "staff", "add", "an.peeters", "--role", "auditor").returncode == 1


@pytest.mark.parametrize("role", ["admin", ""])
def test_staff_add_refuses_an_unknown_role(role: str, tmp_path: object) -> None:
    result = run_cli("sqlite+aiosqlite:///unused.db", "staff", "add", "x.y", "--role", role)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
