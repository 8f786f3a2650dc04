"""Prometheus metrics of the gateway (one registry per process; see docs/operations.md, "Metrics").

Label values are codes from our own source (endpoint kinds, error reasons, route templates): never a
pupil's name, id, school or a URL a client sent. Each counter is incremented in one line where the
thing happens; the database pool is read when Prometheus scrapes.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from leerid_gateway.kit.errors import PupilError, UpstreamError

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

LOGINS = Counter(
    "leerid_logins",
    "Completed or failed logins by outcome: success, refused, or the failure reason.",
    ["outcome"],
    registry=REGISTRY,
)
MERGES = Counter(
    "leerid_identity_merges", "Identities merged into another by reconciliation.", registry=REGISTRY
)
TOKENS_ISSUED = Counter("leerid_tokens_issued", "Access tokens issued by POST /token.", registry=REGISTRY)
INTROSPECTIONS = Counter(
    "leerid_introspections", "RFC 7662 introspection answers by result.", ["result"], registry=REGISTRY
)
UPSTREAM_SECONDS = Histogram(
    "leerid_upstream_request_duration_seconds",
    "Calls to ACM and the datastore (each attempt) by endpoint and outcome.",
    ["endpoint", "outcome"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "leerid_http_request_duration_seconds",
    "Requests served, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
DB_POOL = Gauge(
    "leerid_db_pool_connections",
    "Database connections of this process by state (read at scrape time).",
    ["state"],
    registry=REGISTRY,
)
DB_POOL_SIZE = Gauge("leerid_db_pool_size", "Configured pool size of this process.", registry=REGISTRY)


def login_admitted(merged: int) -> None:
    """A login that ended with a session; ``merged`` identities were folded into the pupil's."""
    LOGINS.labels(outcome="success").inc()
    if merged:
        MERGES.inc(merged)


def login_failed(error: PupilError) -> None:
    """A pupil saw an error page. An upstream failure names the endpoint that failed."""
    LOGINS.labels(outcome=failure_outcome(error)).inc()


def failure_outcome(error: PupilError) -> str:
    if error.reason == "no_partner_enrolment":
        return "refused"
    # `raise upstream_unavailable(...) from None` keeps the UpstreamError as __context__.
    cause = error.__context__
    if error.reason == "upstream" and isinstance(cause, UpstreamError):
        return f"upstream_{cause.kind}"
    return error.reason


# Bound once: /introspect is the hot path, and .labels() is a dict lookup plus a lock per call.
_INTROSPECTED_ACTIVE = INTROSPECTIONS.labels(result="active")
_INTROSPECTED_INACTIVE = INTROSPECTIONS.labels(result="inactive")


def introspected(result: dict[str, Any]) -> None:
    (_INTROSPECTED_ACTIVE if result.get("active") is True else _INTROSPECTED_INACTIVE).inc()


# Children looked up once per label set: ``.labels()`` validates the labels and takes the metric's
# lock on every call (1.2 % of a login's CPU for its four observations). As bounded as the metric's
# own children, which prometheus_client keeps anyway: route templates, methods, status codes.
_HTTP_CHILDREN: dict[tuple[str, str, int], Any] = {}
_UPSTREAM_CHILDREN: dict[tuple[str, str], Any] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """One served request (kit/edge.py): ``method`` and ``route`` from a closed set."""
    child = _HTTP_CHILDREN.get((method, route, status))
    if child is None:
        child = HTTP_SECONDS.labels(method=method, route=route, status=str(status))
        _HTTP_CHILDREN[(method, route, status)] = child
    child.observe(seconds)


@contextmanager
def upstream_timer(endpoint: str) -> Iterator[None]:
    """Time one call to ACM/the datastore; an exception counts as outcome="error"."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        child = _UPSTREAM_CHILDREN.get((endpoint, outcome))
        if child is None:
            child = _UPSTREAM_CHILDREN[(endpoint, outcome)] = UPSTREAM_SECONDS.labels(
                endpoint=endpoint, outcome=outcome
            )
        child.observe(time.perf_counter() - started)


P = ParamSpec("P")
R = TypeVar("R")


def timed_upstream(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate ``request_json(client, kind, …)``: each call is timed under its ``kind`` (endpoint)."""
    if list(inspect.signature(func).parameters)[1:2] != ["kind"]:
        raise TypeError(f"{func.__name__} must take the endpoint `kind` as its second parameter")

    @functools.wraps(func)
    async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
        kind = args[1] if len(args) > 1 else kwargs["kind"]
        with upstream_timer(str(kind)):
            return await func(*args, **kwargs)

    return timed


def observe_pool(pool: Any, warm: int = 0) -> None:
    """Copy the SQLAlchemy pool's counters into the gauges (QueuePool; other pools report nothing).
    ``warm`` connections are checked out of the pool but idle, kept for the login's next statement
    (db.py ``_Warm``): counted as idle, not in use."""
    moved = {"in_use": -warm, "idle": warm, "overflow": 0}
    for state, method in (("in_use", "checkedout"), ("idle", "checkedin"), ("overflow", "overflow")):
        reader = getattr(pool, method, None)
        if callable(reader):
            DB_POOL.labels(state=state).set(max(int(reader()) + moved[state], 0))
    size = getattr(pool, "size", None)
    if callable(size):
        DB_POOL_SIZE.set(int(size()))


def render(pool: Any, warm: int = 0) -> bytes:
    observe_pool(pool, warm)
    return generate_latest(REGISTRY)
