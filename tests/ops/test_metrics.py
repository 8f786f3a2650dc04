"""/metrics: what an operator sees, who may see it, and that no pupil's data is in it (issue 7)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from leerid_gateway.demo.provider import DEMO_PUPILS, DemoPupil
from leerid_gateway.kit import lifecycle
from tests.e2e.conftest import RETURN_TO, World, WorldFactory
from tests.support.browser import Browser
from tests.support.faults import fixed

TOKEN = "metrics-token-0123456789abcdef"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(world: World) -> tuple[str, Samples]:
    answer = httpx.get(f"{world.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return answer.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def browsers() -> Iterator[list[Browser]]:
    made = [Browser() for _ in range(6)]
    yield made
    for browser in made:
        browser.close()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_metrics_count_what_happens_without_personal_data(
    make_world: WorldFactory, browsers: list[Browser]
) -> None:
    world: World = await make_world(metrics_enabled=True, metrics_token=TOKEN, database_pool_size=3)
    _, before = scrape(world)

    # Two temporary accounts of one pupil, then the identified account that lists both: one merge.
    base = next(p for p in DEMO_PUPILS if p.key == "noah-temp")
    second_temp = DemoPupil(
        key="noah-temp2",
        label="Noah, tweede tijdelijk account",
        sub="9" * 32,
        claims={**base.claims, "ov_account_uuid": "0a0a0a0a-1111-4222-8333-444455556666"},
    )
    world.provider.add_pupil(second_temp)
    noah = next(p for p in DEMO_PUPILS if p.key == "noah")
    history = [base.claims["ov_account_uuid"], second_temp.claims["ov_account_uuid"]]
    world.provider.add_pupil(
        DemoPupil(noah.key, noah.label, noah.sub, {**noah.claims, "ov_historiek_account_uuid": history})
    )
    for browser, pupil in zip(browsers, ["lotte", "noah-temp", "noah-temp2", "noah"], strict=False):
        assert browser.login(world.url, pupil, RETURN_TO).status_code == 303
    assert browsers[4].login(world.url, "emma", RETURN_TO).status_code == 403  # not a partner school
    world.faults.overrides["/token"] = fixed(500, b"{}")
    assert browsers[5].login(world.url, "lotte", RETURN_TO).status_code == 502
    world.faults.clear()

    lotte = browsers[0]
    tokens = [lotte.token(world.url).json()["access_token"] for _ in range(2)]
    for token in (tokens[0], "not-a-token"):
        httpx.post(f"{world.url}/introspect", data={"token": token}, auth=world.internal_client)

    text, after = scrape(world)
    assert grew(before, after, "leerid_logins_total", outcome="success") == 4
    assert grew(before, after, "leerid_logins_total", outcome="refused") == 1
    assert grew(before, after, "leerid_logins_total", outcome="upstream_token") == 1
    assert grew(before, after, "leerid_identity_merges_total") == 1
    assert grew(before, after, "leerid_tokens_issued_total") == 2
    assert grew(before, after, "leerid_introspections_total", result="active") == 1
    assert grew(before, after, "leerid_introspections_total", result="inactive") == 1
    ok_calls = "leerid_upstream_request_duration_seconds_count"
    assert grew(before, after, ok_calls, endpoint="token", outcome="ok") == 5
    assert grew(before, after, ok_calls, endpoint="token", outcome="error") == 1
    assert grew(before, after, ok_calls, endpoint="datastore", outcome="ok") == 5
    served = "leerid_http_request_duration_seconds_count"
    assert grew(before, after, served, method="GET", route="/callback", status="303") == 4
    assert value(after, "leerid_db_pool_size") == 3
    assert ("leerid_db_pool_connections", frozenset({("state", "in_use")})) in after

    # Nothing that identifies a pupil, a school or an authorization code appears anywhere.
    me = lotte.http.get(f"{world.url}/me").json()
    forbidden = [me["sub"], "Lotte", "Peeters", "Noah", "Maes", "code=", "?"]
    forbidden += [str(p.claims["ov_account_uuid"]) for p in DEMO_PUPILS] + [p.sub for p in DEMO_PUPILS]
    assert not [word for word in forbidden if word in text]


async def test_metrics_are_off_by_default(world: World) -> None:
    assert httpx.get(f"{world.url}/metrics").status_code == 404


async def test_metrics_need_the_bearer_token(make_world: WorldFactory) -> None:
    world: World = await make_world(metrics_enabled=True, metrics_token=TOKEN)
    anonymous = httpx.get(f"{world.url}/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.get(f"{world.url}/metrics", headers={"Authorization": f"Bearer {TOKEN[:-1]}x"})
    assert wrong.status_code == 401
    assert "/metrics" not in httpx.get(f"{world.url}/openapi.json").json()["paths"]


async def test_readyz_says_draining_once_sigterm_arrived(world: World) -> None:
    assert httpx.get(f"{world.url}/readyz").status_code == 200
    lifecycle.DRAINING.set()
    try:
        answer = httpx.get(f"{world.url}/readyz")
        assert answer.status_code == 503 and answer.json()["status"] == "draining"
        assert httpx.get(f"{world.url}/healthz").status_code == 200
    finally:
        lifecycle.DRAINING.clear()
