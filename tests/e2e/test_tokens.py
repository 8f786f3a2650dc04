"""Tokens at production grade: every inactive case, key rotation under load, revocation seen by
every replica within a second (issue 5)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from joserfc import jwt as jose_jwt
from sqlalchemy import delete

from leerid_gateway.db import create_session_factory, unit_of_work
from leerid_gateway.demo.provider import DEMO_PUPILS, DemoPupil
from leerid_gateway.identity.models import Identity
from leerid_gateway.kit.crypto import Sealer
from leerid_gateway.tokens import keys as key_store
from tests.e2e.conftest import World, WorldFactory
from tests.support.browser import Browser
from tests.support.processes import GatewayProcess


def introspect(world: World, token: str, url: str | None = None) -> dict[str, Any]:
    client_id, secret = world.internal_client
    answer = httpx.post(f"{url or world.url}/introspect", data={"token": token}, auth=(client_id, secret))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def fresh_token(world: World, browser: Browser | None = None) -> str:
    answer = (browser or world.browser).token(world.url)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def our_keys(world: World) -> key_store.LoadedKeys:
    sealer = Sealer(world.settings.secret_key.get_secret_value(), "signing-keys")
    async with create_session_factory(world.db)() as db:
        return await key_store.load(db, sealer, max_token_ttl=world.settings.access_token_ttl)


def forge(
    keys: key_store.LoadedKeys, claims: dict[str, Any], *, private: Any = None, kid: str | None = None
) -> str:
    signer = keys.signer()
    header = {"typ": "at+jwt", "alg": signer.alg, "kid": kid or signer.kid}
    return jose_jwt.encode(header, claims, private or signer.private, algorithms=[signer.alg])


async def test_every_inactive_case_reveals_nothing(world: World) -> None:
    world.login("lotte")
    good = fresh_token(world)
    claims = jwt.decode(good, options={"verify_signature": False})
    assert introspect(world, good)["active"] is True
    keys = await our_keys(world)
    now = int(time.time())

    expired = forge(keys, {**claims, "iat": now - 600, "exp": now - 300})
    unknown_session = forge(keys, {**claims, "sid": "no-such-session", "jti": "x1"})
    wrong_sub = forge(keys, {**claims, "sub": str(uuid.uuid4()), "jti": "x2"})
    wrong_aud = forge(keys, {**claims, "aud": "someone-else", "jti": "x3"})
    foreign_key = key_store.generate("ES256")
    foreign = forge(keys, {**claims, "jti": "x4"}, private=foreign_key)  # our kid, not our key
    unknown_kid = forge(keys, {**claims, "jti": "x5"}, private=foreign_key, kid="not-ours")
    head, payload, signature = good.split(".")
    none_header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"at+jwt"}').decode()
    cases = {
        "expired": expired,
        "unknown session": unknown_session,
        "subject not the session's": wrong_sub,
        "wrong audience": wrong_aud,
        "foreign-signed": foreign,
        "unknown kid": unknown_kid,
        "alg none": f"{none_header}.{payload}.",
        "truncated signature": f"{head}.{payload}.{signature[:-6]}",
        "malformed": "not-a-jwt",
        "empty-ish": "...",
        "huge": "A" * 8000,
    }
    for name, token in cases.items():
        assert introspect(world, token) == {"active": False}, name

    # RFC 7009: a revoked token is inactive at once; revoking garbage is a harmless 200.
    client_id, secret = world.internal_client
    assert (
        httpx.post(f"{world.url}/revoke", data={"token": good}, auth=(client_id, secret)).status_code == 200
    )
    assert introspect(world, good) == {"active": False}
    assert (
        httpx.post(f"{world.url}/revoke", data={"token": "garbage"}, auth=(client_id, secret)).status_code
        == 200
    )
    assert httpx.post(f"{world.url}/revoke", data={"token": good}).status_code == 401
    # Another token of the same session stays active: revocation is per token.
    assert introspect(world, fresh_token(world))["active"] is True


async def test_merged_away_and_deleted_identities_tokens_are_inactive(world: World) -> None:
    base = next(p for p in DEMO_PUPILS if p.key == "noah-temp")
    second_temp = DemoPupil(
        key="noah-temp2",
        label="Noah op een tweede tijdelijk account",
        sub="9" * 32,
        claims={**base.claims, "ov_account_uuid": "0a0a0a0a-1111-4222-8333-444455556666"},
    )
    world.provider.add_pupil(second_temp)
    identified = next(p for p in DEMO_PUPILS if p.key == "noah")
    world.provider.add_pupil(
        DemoPupil(
            key="noah",
            label=identified.label,
            sub=identified.sub,
            claims={
                **identified.claims,
                "ov_historiek_account_uuid": [
                    base.claims["ov_account_uuid"],
                    second_temp.claims["ov_account_uuid"],
                ],
            },
        )
    )

    first, second, third = Browser(), Browser(), Browser()
    try:
        first.login(world.url, "noah-temp", "https://eteacher.example/app/")
        token_first = fresh_token(world, first)
        second.login(world.url, "noah-temp2", "https://eteacher.example/app/")
        token_second = fresh_token(world, second)
        assert introspect(world, token_second)["active"] is True

        third.login(world.url, "noah", "https://eteacher.example/app/")

        # The older temporary identity survives (and is identified); the other is merged away.
        assert introspect(world, token_first)["active"] is True
        assert introspect(world, token_second) == {"active": False}
        assert second.token(world.url).status_code == 401
        assert (
            first.http.get(f"{world.url}/me").json()["sub"] == third.http.get(f"{world.url}/me").json()["sub"]
        )

        async with unit_of_work(create_session_factory(world.db)) as db:
            await db.execute(delete(Identity))
        deadline = time.monotonic() + 2
        while introspect(world, token_first)["active"] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert introspect(world, token_first) == {"active": False}
    finally:
        for browser in (first, second, third):
            browser.close()


async def test_key_rotation_under_load_never_fails_a_verification(make_world: WorldFactory) -> None:
    world: World = await make_world(jwks_max_age=1, keys_refresh_interval=0.2)
    world.login("lotte")
    client_id, secret = world.internal_client
    stop = threading.Event()
    failures: list[str] = []
    seen_kids: set[str] = set()
    tokens: list[str] = []

    def hammer() -> None:
        with httpx.Client(timeout=5, cookies=world.browser.http.cookies) as http:
            while not stop.is_set():
                answer = http.post(f"{world.url}/token")
                if answer.status_code != 200:
                    failures.append(f"/token {answer.status_code}")
                    continue
                token = answer.json()["access_token"]
                tokens.append(token)
                seen_kids.add(jwt.get_unverified_header(token)["kid"])
                result = http.post(f"{world.url}/introspect", data={"token": token}, auth=(client_id, secret))
                if result.json().get("active") is not True:
                    failures.append("introspect inactive")

    before = fresh_token(world)
    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        sealer = Sealer(world.settings.secret_key.get_secret_value(), "signing-keys")
        async with unit_of_work(create_session_factory(world.db)) as db:
            new = await key_store.rotate(db, sealer, "ES256", lead=dt.timedelta(seconds=1.5))
        await asyncio.sleep(0.5)
        during = fresh_token(world)
        jwks_kids = {k["kid"] for k in httpx.get(f"{world.url}/.well-known/jwks.json").json()["keys"]}
        assert new.kid in jwks_kids  # published before it signs anything
        assert jwt.get_unverified_header(during)["kid"] != new.kid
        await asyncio.sleep(1.5)
        after = fresh_token(world)
        assert jwt.get_unverified_header(after)["kid"] == new.kid
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        worker.join(timeout=10)

    assert not failures, failures[:5]
    assert len(seen_kids) == 2 and len(tokens) > 20
    # Before, during and after: an independent library verifies all of them from the JWKS alone.
    jwks = jwt.PyJWKClient(f"{world.url}/.well-known/jwks.json", cache_keys=False)
    for token in (before, during, after, tokens[0], tokens[-1]):
        key = jwks.get_signing_key_from_jwt(token)
        jwt.decode(token, key.key, algorithms=["ES256"], audience="eteacher", issuer=world.url)
        assert introspect(world, token)["active"] is True


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_revocation_is_seen_by_another_replica_within_a_second(world: World) -> None:
    """Two gateway processes on one PostgreSQL: a logout on one makes the other answer inactive."""
    replica_a = GatewayProcess(world.settings).wait_ready()
    replica_b = GatewayProcess(world.settings).wait_ready()
    try:
        for replica in (replica_a, replica_b):
            deadline = time.monotonic() + 10
            while replica.get("/readyz").json()["info"]["revocation_listener"] != "listening":
                assert time.monotonic() < deadline, "listener did not come up"
                time.sleep(0.05)
        world.login("lotte")
        cookies = world.browser.http.cookies
        token = httpx.post(f"{replica_a.url}/token", cookies=cookies).json()["access_token"]
        for _ in range(3):  # warm replica B's caches
            assert introspect(world, token, replica_b.url)["active"] is True

        assert httpx.post(f"{replica_a.url}/logout", cookies=cookies).status_code == 204
        started = time.monotonic()
        while introspect(world, token, replica_b.url)["active"]:
            assert time.monotonic() - started < 1.0, "replica B still says active after 1 s"
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        assert elapsed < 1.0
    finally:
        replica_a.stop()
        replica_b.stop()
