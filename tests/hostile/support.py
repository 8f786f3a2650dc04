"""Assertions shared by the hostile tests: a refusal is a clear page or RFC-shaped JSON, never a 500,
never a stack trace, and leaves nothing behind."""

from __future__ import annotations

import httpx

from leerid_gateway.identity.models import AccountAlias, Identity, IdentityEvent
from leerid_gateway.privacy.models import PrivacyLogEntry
from leerid_gateway.sessions.models import BrowserSession
from tests.e2e.conftest import World
from tests.e2e.test_login_failures import assert_dutch_page, assert_nothing_stored

# What the pupil reads when ACM (or something pretending to be ACM) said something untrustworthy.
UPSTREAM_PAGE = "Aanmelden lukt even niet"
EXPIRED_PAGE = "Je aanmelding is verlopen"
ISS_PAGE = "Aanmelding geweigerd"
BAD_LINK_PAGE = "Deze link is niet geldig"


def assert_no_stack_trace(answer: httpx.Response) -> None:
    body = answer.text
    assert "Traceback" not in body, body[:500]
    assert 'File "' not in body, body[:500]


def assert_refused_page(answer: httpx.Response, status: int, phrase: str) -> None:
    """A Dutch page with this status: no redirect anywhere, no session cookie, no stack trace."""
    assert answer.status_code != 500
    assert_dutch_page(answer, status, phrase)
    assert "location" not in answer.headers
    assert not any("leerid_session" in value for value in answer.headers.get_list("set-cookie"))
    assert_no_stack_trace(answer)


async def assert_nothing_stored_at_all(world: World) -> None:
    """No session, identity, alias, privacy-log entry or identity event."""
    await assert_nothing_stored(world)
    assert await world.count(IdentityEvent) == 0


async def assert_stored_once(world: World) -> None:
    """Exactly what one admitted login leaves: one session, one identity."""
    assert await world.count(BrowserSession) == 1
    assert await world.count(Identity) == 1
    assert await world.count(AccountAlias) >= 1
    assert await world.count(PrivacyLogEntry) == 1


__all__ = [
    "BAD_LINK_PAGE",
    "EXPIRED_PAGE",
    "ISS_PAGE",
    "UPSTREAM_PAGE",
    "assert_no_stack_trace",
    "assert_nothing_stored_at_all",
    "assert_refused_page",
    "assert_stored_once",
]
