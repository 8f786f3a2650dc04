"""Running wrk (one thread, as the machine has two cores) and py-spy against the gateway."""

from __future__ import annotations

import base64
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WRK_DIR = Path(__file__).resolve().parent / "wrk"
RESULTS = Path(__file__).resolve().parent / "results"


def save_results(kind: str, results: dict[str, Any]) -> Path:
    """Write a benchmark's full results to bench/results/<kind>-<local time>.json; return the path."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    return out


PY_SPY = str(Path(sys.executable).parent / "py-spy")


def basic(client_id: str, client_secret: str) -> str:
    return base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


def _machine_busy() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def wrk(
    url: str,
    script: str,
    *,
    duration: int = 15,
    connections: int = 32,
    env: dict[str, str] | None = None,
    pid: int | None = None,
) -> dict[str, Any]:
    """One wrk run; returns its JSON summary plus the raw text (command line and output).

    With ``pid`` (the gateway's): the gateway's CPU use in cores (1.0 = one full core) and the whole
    machine's, so a run disturbed by other work on the machine can be told apart.
    """
    from bench.stand import cpu_seconds

    busy0, total0 = _machine_busy()
    cpu0 = cpu_seconds(pid) if pid else 0.0
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(WRK_DIR / script),
        url,
    ]
    out = subprocess.run(
        command, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=True
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRK_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    busy1, total1 = _machine_busy()
    seconds = result["duration_us"] / 1e6
    result["machine_busy_cores"] = round((busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1), 2)
    if pid:
        result["gateway_cores"] = round((cpu_seconds(pid) - cpu0) / seconds, 2)
    result["loadavg_after"] = Path("/proc/loadavg").read_text().split()[0]
    result["command"] = " ".join(command)
    result["raw"] = "\n".join(x for x in out.stdout.splitlines() if not x.startswith("WRK_JSON "))
    return result


def profiled(pid: int, seconds: int, name: str) -> subprocess.Popen[str]:
    """Start py-spy (100 Hz, collapsed stacks) on the gateway; wait() on it after the load."""
    RESULTS.mkdir(exist_ok=True)
    return subprocess.Popen(
        [
            PY_SPY,
            "record",
            "-p",
            str(pid),
            "-d",
            str(seconds),
            "-r",
            "100",
            "--format",
            "raw",
            "-o",
            str(RESULTS / f"{name}.collapsed"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def hot_frames(name: str, top: int = 25) -> list[tuple[str, float, float]]:
    """(frame, inclusive %, self %) of the event loop thread's busy samples (py-spy leaves out idle
    ones: a loop waiting in epoll is not counted), from a collapsed-stack file."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in (RESULTS / f"{name}.collapsed").read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if "Runner.run" not in stack:
            continue  # the event loop's thread only (the anyio worker threads mostly wait)
        count = int(count_text)
        total += count
        frames = stack.split(";")
        frames = frames[frames.index(next(f for f in frames if f.startswith("Runner.run"))) + 1 :] or [
            "(loop)"
        ]
        for frame in set(frames):
            inclusive[_short(frame)] += count
        own[_short(frames[-1])] += count
    rows = [(f, 100 * c / total, 100 * own[f] / total) for f, c in inclusive.most_common(top)]
    return rows


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" → "func (module.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


MARKERS = [
    ("access log line (logging module)", "(logging/__init__.py)"),
    ("thread-pool hop for sync dependencies", "run_in_threadpool (starlette/concurrency.py)"),
    ("FastAPI solve_dependencies", "solve_dependencies (dependencies/utils.py)"),
    ("form body parsing", "request_body_to_args (dependencies/utils.py)"),
    ("route matching", "_IncludedRouter._match (fastapi/routing.py)"),
    ("sending the response", "Response.__call__ (starlette/responses.py)"),
    ("authenticate_client", "authenticate_client (clients/auth.py)"),
    ("Introspector.claims_if_active", "Introspector.claims_if_active (tokens/introspection.py)"),
    ("tokens.service.verify (JWS check)", "verify (tokens/service.py)"),
    ("tokens.service.issue (JWS sign)", "issue (tokens/service.py)"),
    ("sessions.resolve", "resolve (sessions/service.py)"),
    ("SQLAlchemy async bridge (greenlet_spawn)", "greenlet_spawn (util/concurrency.py)"),
    ("pool pre-ping", "_async_ping (postgresql/asyncpg.py)"),
    ("rate limiter", "(kit/ratelimit.py)"),
    ("RelyingParty.start (/login)", "RelyingParty.start (oidc/service.py)"),
    ("RelyingParty.finish (/callback)", "RelyingParty.finish (oidc/service.py)"),
    ("  upstream HTTP calls (httpx)", "AsyncClient.send (httpx/_client.py)"),
    ("  id_token validation", "validate_id_token (oidc/id_token.py)"),
    ("  RelyingParty._admit (one transaction)", "RelyingParty._admit (oidc/service.py)"),
    ("    identity reconcile", "reconcile (identity/service.py)"),
    ("    privacy.record", "record (privacy/service.py)"),
    ("    sessions.insert_new", "insert_new (sessions/service.py)"),
    ("asyncpg execute (all statements)", "(asyncpg/connection.py)"),
]


def breakdown(name: str) -> list[tuple[str, float]]:
    """Share of the event loop's busy samples spent under each marker frame (inclusive)."""
    hits = dict.fromkeys((label for label, _ in MARKERS), 0)
    total = 0
    for line in (RESULTS / f"{name}.collapsed").read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if "Runner.run" not in stack:
            continue
        count = int(count_text)
        total += count
        frames = {_short(f) for f in stack.split(";")}
        joined = "\n".join(frames)
        for label, marker in MARKERS:
            if marker in joined:
                hits[label] += count
    return [(label, 100 * n / total) for label, n in hits.items() if n]
