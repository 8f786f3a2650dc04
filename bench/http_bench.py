"""Issue 5, the HTTP figures, in one run against one real `leerid-gateway serve` (1 worker):

/healthz (the bare endpoint), /introspect valid / random garbage / forged signature, /token,
full logins per second and the gateway's CPU ms per login. Each /introspect and /token figure is
reported as a ratio to /healthz measured in the same run.

    .venv/bin/python -m bench.http_bench            # from the repository root, ~3 minutes
    .venv/bin/python -m bench.http_bench --profile  # + py-spy profiles of the hot paths
"""

from __future__ import annotations

import argparse
import asyncio
import html
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.stand import RETURN_TO, Stand, cpu_seconds, machine, rss_mib
from bench.wrkrun import basic, hot_frames, profiled, save_results, wrk

_FORM_ACTION = 'action="'


async def _login(http: httpx.AsyncClient, stand: Stand, pupil: str) -> float:
    """One full login; returns its wall time in seconds."""
    from bench.stand import _FORM, _HIDDEN

    t0 = time.perf_counter()
    http.cookies.clear()
    start = await http.get(f"{stand.url}/login", params={"return_to": RETURN_TO})
    assert start.status_code == 303, start.text[:200]
    authorize = start.headers["location"]
    page = await http.get(authorize)
    match = _FORM.search(page.text)
    assert match is not None
    fields = {html.unescape(k): html.unescape(v) for k, v in _HIDDEN.findall(match.group(2))}
    action = str(httpx.URL(authorize).join(html.unescape(match.group(1))))
    answer = await http.post(action, data={**fields, "pupil": pupil})
    assert answer.status_code == 303, answer.text[:200]
    done = await http.get(answer.headers["location"])
    assert done.status_code == 303 and "leerid_session" in done.headers.get("set-cookie", ""), done.text[:200]
    return time.perf_counter() - t0


def machine_loop_ms() -> float:
    """The machine's speed now: the fastest of three runs of a fixed pure-Python loop, in ms."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return 1000 * best


async def logins(stand: Stand, count: int, concurrency: int) -> dict[str, Any]:
    pupils = ["lotte", "noah-temp", "noah"]
    queue = list(range(count))
    times: list[float] = []

    async def browser() -> None:
        async with httpx.AsyncClient(follow_redirects=False, timeout=30) as http:
            while queue:
                i = queue.pop()
                times.append(await _login(http, stand, pupils[i % len(pupils)]))

    cpu0, t0 = cpu_seconds(stand.gateway_pid), time.perf_counter()
    await asyncio.gather(*(browser() for _ in range(concurrency)))
    cpu1, t1 = cpu_seconds(stand.gateway_pid), time.perf_counter()
    times.sort()
    return {
        "logins": count,
        "concurrency": concurrency,
        "per_second": count / (t1 - t0),
        "gateway_cpu_ms_per_login": 1000 * (cpu1 - cpu0) / count,
        "latency_ms_p50": 1000 * statistics.median(times),
        "latency_ms_p99": 1000 * times[int(0.99 * (len(times) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="py-spy the hot paths afterwards")
    parser.add_argument(
        "--rest", type=float, default=20, help="seconds idle between the load and the rested logins"
    )
    parser.add_argument(
        "--only",
        choices=["logins"],
        help="logins only, in --rounds interleaved with the bare endpoint (plus a login profile with "
        "--profile): ~1 minute",
    )
    parser.add_argument(
        "--whatif",
        choices=["async-deps", "log-warning", "async-deps+log-warning"],
        help="bench-only experiments: async request dependencies (bench/whatif_async_deps.py), "
        "LEERID_LOG_LEVEL=warning (no per-request access log line)",
    )
    args = parser.parse_args()
    d, c = args.duration, args.connections

    results: dict[str, Any] = {"machine": machine(), "duration_s": d, "connections": c, "whatif": args.whatif}
    serve = [sys.executable, "-m", "bench.whatif_async_deps"] if "async-deps" in (args.whatif or "") else None
    extra_env = {"LEERID_LOG_LEVEL": "warning"} if "log-warning" in (args.whatif or "") else {}
    with Stand(serve=serve, **extra_env) as stand:
        cookie = stand.login("lotte")
        token = stand.token(cookie)
        assert stand.introspect(token)["active"] is True
        env = {
            "BENCH_BASIC": basic(stand.client_id, stand.client_secret),
            "BENCH_TOKEN": token,
            "BENCH_COOKIE": cookie,
        }
        results["rss_mib_start"] = rss_mib(stand.gateway_pid)
        wrk(stand.url, "healthz.lua", duration=3, connections=c, env=env, pid=stand.gateway_pid)  # warm-up

        if args.only == "logins":
            _logins_only(stand, args, results)
            return
        scenarios = [
            ("introspect_valid", "introspect_valid.lua", {}),
            ("introspect_garbage_random", "introspect_garbage.lua", {"BENCH_GARBAGE": "random"}),
            ("introspect_garbage_forged", "introspect_garbage.lua", {"BENCH_GARBAGE": "forged"}),
            ("token", "token.lua", {}),
        ]
        # Interleaved rounds: this machine's speed drifts by tens of percent within minutes (seen:
        # /healthz 2,978 req/s at the start of a run and 4,012 at its end), so each round measures
        # the bare endpoint before and after its scenarios, each ratio is taken within its round,
        # and the summary is the median over the rounds.
        runs: dict[str, dict[str, Any]] = {}
        for n in range(1, args.rounds + 1):
            before = wrk(stand.url, "healthz.lua", duration=d, connections=c, env=env, pid=stand.gateway_pid)
            measured = {
                name: wrk(
                    stand.url, script, duration=d, connections=c, env={**env, **extra}, pid=stand.gateway_pid
                )
                for name, script, extra in scenarios
            }
            after = wrk(stand.url, "healthz.lua", duration=d, connections=c, env=env, pid=stand.gateway_pid)
            bare = (before["rps"] + after["rps"]) / 2
            for run in (before, after, *measured.values()):
                run["ratio_to_healthz"] = run["rps"] / bare
            runs[f"{n}: healthz"] = before
            runs.update({f"{n}: {name}": run for name, run in measured.items()})
            runs[f"{n}: healthz again"] = after
        assert stand.introspect(token)["active"] is True  # the valid token stayed valid throughout
        results["wrk"] = runs
        results["summary"] = _summary(runs, [name for name, _, _ in scenarios])
        results["healthz_mean_rps"] = statistics.mean(r["rps"] for k, r in runs.items() if "healthz" in k)

        # This machine runs slower for a while after minutes of full load (seen: a pure-Python loop
        # 25 % slower right after 30 s of two busy cores, back within 15 s; docs/performance.md,
        # session 9). The logins are measured right after the load, then again rested, with the
        # machine's speed at both points, so that neither figure stands without the other.
        results["machine_loop_ms_after_load"] = machine_loop_ms()
        results["logins_sequential_after_load"] = asyncio.run(logins(stand, args.logins, 1))
        time.sleep(args.rest)
        results["machine_loop_ms_rested"] = machine_loop_ms()
        results["logins_sequential"] = asyncio.run(logins(stand, args.logins, 1))
        results["logins_concurrent"] = asyncio.run(logins(stand, args.logins, 8))
        results["rss_mib_end"] = rss_mib(stand.gateway_pid)

        if args.profile:
            profiles: dict[str, Any] = {}
            for name, script, extra in [
                ("healthz", "healthz.lua", {}),
                ("introspect_valid", "introspect_valid.lua", {}),
                ("introspect_garbage_forged", "introspect_garbage.lua", {"BENCH_GARBAGE": "forged"}),
                ("token", "token.lua", {}),
            ]:
                spy = profiled(stand.gateway_pid, d, f"profile-{name}")
                time.sleep(1)
                wrk(stand.url, script, duration=d - 2, connections=c, env={**env, **extra})
                spy.wait()
                profiles[name] = hot_frames(f"profile-{name}", top=40)
            spy = profiled(stand.gateway_pid, 20, "profile-login")
            asyncio.run(logins(stand, 200, 8))
            spy.wait()
            profiles["login"] = hot_frames("profile-login", top=60)
            results["profiles"] = profiles

    tag = f"-{args.whatif}" if args.whatif else ""
    out = save_results(f"http{tag}", results)
    report(results)
    print(f"\nfull results: {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


def _summary(runs: dict[str, dict[str, Any]], names: list[str]) -> dict[str, dict[str, float]]:
    """Per scenario: the median over the rounds of its ratio to the bare endpoint (and the range),
    its median req/s and p99, and the gateway's CPU per request, also in bare requests."""
    out: dict[str, dict[str, float]] = {}
    bare_cpu = statistics.median(
        r["gateway_cores"] / r["rps"] for k, r in runs.items() if "healthz" in k and r["rps"] > 0
    )
    for name in ["healthz", *names]:
        rows = [r for k, r in runs.items() if k.split(": ", 1)[1] == name]
        ratios = [r["ratio_to_healthz"] for r in rows]
        cpu = statistics.median(r["gateway_cores"] / r["rps"] for r in rows)
        out[name] = {
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "rps_median": statistics.median(r["rps"] for r in rows),
            "p99_ms_median": statistics.median(r["lat_p99_us"] for r in rows) / 1000,
            "cpu_ms_per_request": 1000 * cpu,
            "bare_requests": cpu / bare_cpu,
        }
    out["bare_cpu_ms_per_request"] = {"value": 1000 * bare_cpu}
    return out


def _logins_only(stand: Stand, args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Logins in interleaved rounds: the bare endpoint, then ``--logins / --rounds`` sequential logins,
    then the same concurrently, every round. This machine's speed drifts by tens of percent within
    minutes, so each round's figure is also taken in bare requests of that same round, and the
    summary is the median over the rounds (with the range)."""
    asyncio.run(logins(stand, 30, 1))  # warm-up: discovery, JWKS, statement caches
    per_round = max(args.logins // args.rounds, 20)
    rounds: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        bare = wrk(stand.url, "healthz.lua", duration=3, connections=32, pid=stand.gateway_pid)
        bare_ms = 1000 * bare["gateway_cores"] / bare["rps"]
        loop_ms = machine_loop_ms()
        sequential = asyncio.run(logins(stand, per_round, 1))
        concurrent = asyncio.run(logins(stand, per_round, 8))
        rounds.append(
            {"bare_cpu_ms": bare_ms, "loop_ms": loop_ms, "sequential": sequential, "concurrent": concurrent}
        )
    results["login_rounds"] = rounds
    results["summary"] = {
        "bare_cpu_ms_per_request": {"value": statistics.median(r["bare_cpu_ms"] for r in rounds)},
        "machine_loop_ms": {"value": statistics.median(r["loop_ms"] for r in rounds)},
    }
    for key in ("sequential", "concurrent"):
        cpu = [r[key]["gateway_cpu_ms_per_login"] for r in rounds]
        bare_units = [r[key]["gateway_cpu_ms_per_login"] / r["bare_cpu_ms"] for r in rounds]
        results[f"logins_{key}"] = {
            "logins": per_round * args.rounds,
            "concurrency": rounds[0][key]["concurrency"],
            "per_second": statistics.median(r[key]["per_second"] for r in rounds),
            "gateway_cpu_ms_per_login": statistics.median(cpu),
            "gateway_cpu_ms_min": min(cpu),
            "gateway_cpu_ms_max": max(cpu),
            "bare_requests_per_login": statistics.median(bare_units),
            "latency_ms_p50": statistics.median(r[key]["latency_ms_p50"] for r in rounds),
            "latency_ms_p99": statistics.median(r[key]["latency_ms_p99"] for r in rounds),
        }
    results["rss_mib_end"] = rss_mib(stand.gateway_pid)
    if args.profile:
        spy = profiled(stand.gateway_pid, 20, "profile-login")
        asyncio.run(logins(stand, 200, 8))
        spy.wait()
        results["profiles"] = {"login": hot_frames("profile-login", top=60)}
    out = save_results("http-logins", results)
    m = results["machine"]
    print(f"{m['date']}  commit {m['commit']} + {m['uncommitted_src_files']} uncommitted files")
    bare_ms = results["summary"]["bare_cpu_ms_per_request"]["value"]
    loops = ", ".join(f"{r['loop_ms']:.0f}" for r in rounds)
    print(f"bare request (/healthz): {bare_ms:.3f} gateway CPU ms (median of {args.rounds} rounds)")
    print(f"the machine's speed, a fixed pure-Python loop before each round's logins: {loops} ms")
    for key in ("logins_sequential", "logins_concurrent"):
        r = results[key]
        print(
            f"{key}: {r['logins']} logins in {args.rounds} rounds, concurrency {r['concurrency']}: "
            f"{r['per_second']:.1f}/s, gateway CPU {r['gateway_cpu_ms_per_login']:.2f} ms/login "
            f"(rounds {r['gateway_cpu_ms_min']:.2f} to {r['gateway_cpu_ms_max']:.2f}; "
            f"= {r['bare_requests_per_login']:.1f} bare requests), "
            f"p50 {r['latency_ms_p50']:.1f} ms, p99 {r['latency_ms_p99']:.1f} ms"
        )
    for name, rows in results.get("profiles", {}).items():
        print(f"\nprofile {name} (inclusive %, self %):")
        for frame, inc, own in rows:
            print(f"  {inc:5.1f} {own:5.1f}  {frame}")
    print(f"\nfull results: {out}")


def report(results: dict[str, Any]) -> None:
    from bench.report import http

    m = results["machine"]
    print(f"{m['date']}  nproc={m['nproc']}  {m['cpu']}  Python {m['python']}  PostgreSQL {m['postgres']}")
    print(f"commit {m['commit']} + {m['uncommitted_src_files']} uncommitted files in src/ and migrations/")
    print(f"wrk -t1 -c{results['connections']} -d{results['duration_s']}s; gateway: 1 worker\n")
    print(http(results))
    for name, rows in results.get("profiles", {}).items():
        print(f"\nprofile {name} (inclusive %, self %):")
        for frame, inc, own in rows[:25]:
            print(f"  {inc:5.1f} {own:5.1f}  {frame}")


if __name__ == "__main__":
    main()
