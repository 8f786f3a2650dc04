"""Where a login's CPU time goes, as the kernel accounts it: the gateway's user and system time,
its event loop's wake-ups (voluntary context switches) and preemptions, minor page faults and the
CPU of each of its threads, per login, next to the same figures per bare request (/healthz under
wrk, before and after the logins) of the same run. Read from /proc/PID/{stat,status,task/*/schedstat}
before and after each part; needs what bench/stand.py and wrk need, nothing more.

    .venv/bin/python -m bench.login_anatomy              # ~30 seconds
    .venv/bin/python -m bench.login_anatomy --logins 600

Why it exists: CPU time per login does not follow the instruction count
(bench/login_instructions.py). A login is ~6 bare requests in instructions but 10 to 28 in CPU
time, depending on the machine. The working hypothesis (docs/performance.md, session 6): it runs
cold, waking up many times on cores shared with the client, the stand-in ACM and PostgreSQL,
while wrk keeps the bare request hot.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from bench.http_bench import logins
from bench.stand import Stand, machine, proc_stat
from bench.wrkrun import save_results, wrk

_TICK = os.sysconf("SC_CLK_TCK")


def _sample(pid: int) -> dict[str, float]:
    """Cumulative counters: the process's (all its threads), the main thread's context switches,
    and each thread's scheduler time, keyed by its id (Python 3.11 names every thread after the
    process; the main thread, whose id is the pid, is the event loop's)."""
    stat = proc_stat(pid)
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    sample = {
        # proc(5): fields 10 (minflt), 14 (utime), 15 (stime).
        "minor_faults": float(stat[7]),
        "user_ms": 1000 * int(stat[11]) / _TICK,
        "system_ms": 1000 * int(stat[12]) / _TICK,
        # /proc/PID/status counts these for the main thread only: the event loop's.
        "wakeups (event loop)": float(status["voluntary_ctxt_switches"]),
        "preemptions (event loop)": float(status["nonvoluntary_ctxt_switches"]),
    }
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            ns = int((task / "schedstat").read_text().split()[0])
        except OSError:  # the thread ended while we looked
            continue
        label = "event loop" if task.name == str(pid) else f"{name} {task.name}"
        sample[f"thread {label} ms"] = ns / 1e6
    return sample


def _part(before: dict[str, float], after: dict[str, float], count: float) -> dict[str, Any]:
    """Per unit. A thread seen only after started during the part (all its time counts); a thread
    seen only before ended during it (its time is unknown): it is listed, not counted."""
    return {
        "figures": {key: (after[key] - before.get(key, 0.0)) / count for key in after},
        "threads_ended": sorted(before.keys() - after.keys()),
    }


def _bare(stand: Stand) -> dict[str, Any]:
    before = _sample(stand.gateway_pid)
    run = wrk(stand.url, "healthz.lua", duration=3, connections=32, pid=stand.gateway_pid)
    return _part(before, _sample(stand.gateway_pid), run["requests"]) | {
        "wrk": {k: v for k, v in run.items() if k != "raw"}
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=300, help="logins per part")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine(), "logins_per_part": args.logins, "parts": {}}
    with Stand() as stand:
        asyncio.run(logins(stand, 30, 1))  # warm-up: discovery, JWKS, statement caches
        wrk(stand.url, "healthz.lua", duration=3, connections=32, pid=stand.gateway_pid)
        # The bare request before and after the logins: the machine's speed drifts within minutes.
        results["parts"]["bare request, before"] = _bare(stand)
        for name, concurrency in (("login, one at a time", 1), ("login, 8 browsers", 8)):
            before = _sample(stand.gateway_pid)
            run = asyncio.run(logins(stand, args.logins, concurrency))
            results["parts"][name] = _part(before, _sample(stand.gateway_pid), args.logins) | {"logins": run}
        results["parts"]["bare request, after"] = _bare(stand)
    out = save_results("anatomy", results)
    m = results["machine"]
    print(f"{m['date']}  commit {m['commit']} + {m['uncommitted_src_files']} uncommitted files")
    parts = {name: part["figures"] for name, part in results["parts"].items()}
    keys = sorted({key for part in parts.values() for key in part}, key=lambda k: (k.startswith("thread"), k))
    print("| per unit | " + " | ".join(parts) + " |")
    print("|---|" + "---:|" * len(parts))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{part.get(key, 0.0):.3f}" for part in parts.values()) + " |")
    for name, part in results["parts"].items():
        if part["threads_ended"]:
            print(f"{name}: threads ended during it, not counted: {', '.join(part['threads_ended'])}")
        if "wrk" in part:
            w = part["wrk"]
            print(
                f"{name}: {w['requests']} requests, non-2xx {w['err_status']}, machine busy {w['machine_busy_cores']} of {m['nproc']}"
            )
    print(f"\nfull results: {out}")


if __name__ == "__main__":
    main()
