"""Retries where they are safe, and a circuit breaker per upstream endpoint.

- Retries (with jittered exponential backoff) only for idempotent reads — discovery, JWKS, the
  datastore — and only for faults a retry can cure: a timeout, a refused connection, a 5xx, a 429
  whose Retry-After fits in our budget. Never for the code exchange: a code is single use
  (RFC 6749 §4.1.2, §10.5), so a retried request can only fail or, worse, look like a replay.
- A breaker per endpoint kind: after ``threshold`` consecutive failures it opens for ``cooldown``
  seconds, during which calls fail at once instead of tying up a worker for the full timeout
  (the pupil gets the Dutch "probeer opnieuw" page immediately). Then one trial call decides.
- ``failing_since`` tells /readyz that the provider has been unreachable for a while.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from leerid_gateway.kit.errors import UpstreamError
from leerid_gateway.oidc.upstream import request_json


@dataclass
class Breaker:
    threshold: int
    cooldown: float
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False
    failing_since: float | None = field(default=None)

    def allow(self, now: float) -> bool:
        if self.opened_at is None:
            return True
        if now - self.opened_at < self.cooldown or self.trial_in_flight:
            return False
        self.trial_in_flight = True  # half-open: exactly one caller tests the water
        return True

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.trial_in_flight = False
        self.failing_since = None

    def failure(self, now: float) -> None:
        self.failures += 1
        self.trial_in_flight = False
        if self.failing_since is None:
            self.failing_since = now
        if self.failures >= self.threshold:
            self.opened_at = now


def _retryable(error: UpstreamError, budget_left: float) -> float | None:
    """Seconds to wait before a retry, or None when retrying cannot help."""
    if error.status == 429:
        if error.retry_after is None or error.retry_after > budget_left:
            return None
        return error.retry_after
    if error.status is not None and error.status < 500:
        return None
    if error.status is None and not error.detail.startswith(("timeout", "transport error")):
        return None  # a body that is not JSON, too large, wrong shape: the same answer again
    return 0.0


class Upstream:
    """The gateway's only way to call ACM or the datastore."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        retries: int = 2,
        base_delay: float = 0.2,
        retry_budget: float = 4.0,
        threshold: int = 5,
        cooldown: float = 15.0,
        deadline: float = 10.0,
    ) -> None:
        self._http = http
        self._retries = retries
        self._base_delay = base_delay
        self._retry_budget = retry_budget
        self._threshold = threshold
        self._cooldown = cooldown
        self._deadline = deadline
        self.breakers: dict[str, Breaker] = {}

    def breaker(self, kind: str) -> Breaker:
        found = self.breakers.get(kind)
        if found is None:
            found = self.breakers[kind] = Breaker(self._threshold, self._cooldown)
        return found

    def unreachable_for(self, kinds: tuple[str, ...], now: float | None = None) -> float:
        """How long the longest-failing of these endpoints has been failing (0: none is)."""
        moment = time.monotonic() if now is None else now
        since = [
            b.failing_since for k in kinds if (b := self.breakers.get(k)) and b.failing_since is not None
        ]
        return moment - min(since) if since else 0.0

    async def call(
        self, kind: str, method: str, url: str, *, idempotent: bool, **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        breaker = self.breaker(kind)
        started = time.monotonic()
        attempt = 0
        while True:
            now = time.monotonic()
            if not breaker.allow(now):
                raise UpstreamError(kind, "circuit open (failing repeatedly; not calling for a while)")
            try:
                result = await request_json(self._http, kind, method, url, deadline=self._deadline, **kwargs)
            except UpstreamError as error:
                breaker.failure(time.monotonic())
                budget_left = self._retry_budget - (time.monotonic() - started)
                wait = _retryable(error, budget_left) if idempotent and attempt < self._retries else None
                if wait is None or budget_left <= 0:
                    raise
                attempt += 1
                backoff = self._base_delay * (2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311
                await asyncio.sleep(min(max(wait, backoff), max(budget_left, 0)))
                continue
            breaker.success()
            return result
