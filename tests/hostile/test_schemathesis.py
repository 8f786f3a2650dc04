"""The API fuzzed from the committed openapi.yaml (the contract eTeacher developers read) against a
real gateway on loopback (PostgreSQL, as in production): no 5xx anywhere, and every answer conforms
to the document — documented status codes, content types and bodies, RFC 9110 answers to methods
the document does not list. Bounded: 25 examples per operation, positive and negative.

Every request carries a live pupil session cookie and an internal client's Basic credentials, so
the fuzzer gets past authentication to the handlers (the unauthenticated answers are covered too:
/admin takes neither, and test_malicious_input.py sends requests without them).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from tests.e2e.conftest import World

ROOT = Path(__file__).resolve().parents[2]
schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")

# A schema cannot say which return_to this deployment allows, nor which state is a live login: a
# well-formed but unknown value is refused with the documented 400 page. Only that one answer of
# these operations is exempt from "valid data must be accepted"; every other check still applies.
SEMANTIC_400 = {"GET /login", "GET /callback", "POST /callback", "POST /logout"}
# Cases are generated before the world exists: the auth provider marks the ones that should carry
# credentials, and the test swaps the marker for the live client's Basic credentials.
CREDENTIALS_MARKER = "Basic credentials-of-the-live-internal-client"


@schema.auth().apply_to(path="/events")
class InternalClientBasic:
    """/events declares HTTP Basic: schemathesis applies credentials to the cases that should be
    authenticated and leaves them off the ones testing a missing Authorization header."""

    def get(self, case: Case, ctx: object) -> str:
        return CREDENTIALS_MARKER

    def set(self, case: Case, data: str, ctx: object) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


@pytest.mark.parametrize("backend", ["postgres"])
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_openapi_yaml(case: Case, fuzz_world: World, backend: str) -> None:
    # RFC 6749 §2.3: one client authentication method per request; when the fuzzer put client
    # credentials in the form, Basic would be a second one (a correct 400, not a finding).
    form = case.body if isinstance(case.body, dict) else {}
    client_id, secret = fuzz_world.internal_client
    if (case.headers or {}).get("Authorization") == CREDENTIALS_MARKER:
        case.headers["Authorization"] = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    own_auth = case.operation.path == "/events" or {"client_id", "client_secret"} & form.keys()
    basic = None if own_auth else fuzz_world.internal_client
    response = case.call(
        base_url=fuzz_world.url,
        cookies={"leerid_session": fuzz_world.browser.http.cookies["leerid_session"]},
        auth=basic,
        timeout=15,
    )
    assert response.status_code < 500, response.text[:500]
    assert "Traceback" not in response.text
    semantic = case.operation.label in SEMANTIC_400 and response.status_code == 400
    # Outside /events the harness sends valid credentials itself (above), so "generated auth was
    # accepted" would test the harness; unauthenticated answers are asserted directly in
    # tests/e2e/test_login_failures.py.
    excluded = [ignored_auth, *([positive_data_acceptance] if semantic else [])]
    case.validate_response(response, excluded_checks=excluded)
