"""Where a login's CPU time goes, as the kernel accounts it: the gateway's user and system time,
its wake-ups (voluntary context switches), preemptions, minor page faults and the CPU of each of
its threads, per login, next to the same figures per bare request (/healthz under wrk) of the same
run. Read from /proc/PID/{stat,status,task/*/schedstat} before and after each part; no tools
beyond bench/stand.py's.

    .venv/bin/python -m bench.login_anatomy              # ~1 minute
    .venv/bin/python -m bench.login_anatomy --logins 600

Why it exists: CPU time per login does not follow the instruction count
(bench/login_instructions.py). A login is ~6 bare requests in instructions but 10 to 28 in CPU
time, depending on the machine: it runs cold, waking up many times on cores shared with the
client, the stand-in ACM and PostgreSQL, while wrk keeps the bare request hot
(docs/performance.md, session 6).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from bench.http_bench import logins
from bench.stand import Stand, machine
from bench.wrkrun import RESULTS, wrk

_TICK = os.sysconf("SC_CLK_TCK")


def _sample(pid: int) -> dict[str, float]:
    """Cumulative counters of the process (all its threads) and each thread's scheduler time."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    sample = {
        # proc(5): fields 10 (minflt), 14 (utime), 15 (stime); after the ")" they are 8, 12, 13.
        "minor_faults": float(stat[7]),
        "user_ms": 1000 * int(stat[11]) / _TICK,
        "system_ms": 1000 * int(stat[12]) / _TICK,
        "wakeups": float(status["voluntary_ctxt_switches"]),
        "preemptions": float(status["nonvoluntary_ctxt_switches"]),
    }
    for task in Path(f"/proc/{pid}/task").iterdir():
        name = (task / "comm").read_text().strip()
        ns = int((task / "schedstat").read_text().split()[0])
        key = f"thread {name} ms"
        sample[key] = sample.get(key, 0.0) + ns / 1e6
    return sample


def _per(before: dict[str, float], after: dict[str, float], count: float) -> dict[str, float]:
    return {key: (after[key] - before.get(key, 0.0)) / count for key in after}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=300, help="logins per part")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine(), "parts": {}}
    with Stand() as stand:
        asyncio.run(logins(stand, 30, 1))  # warm-up: discovery, JWKS, statement caches
        wrk(stand.url, "healthz.lua", duration=3, connections=32, pid=stand.gateway_pid)
        for name, concurrency in (("login, one at a time", 1), ("login, 8 browsers", 8)):
            before = _sample(stand.gateway_pid)
            asyncio.run(logins(stand, args.logins, concurrency))
            results["parts"][name] = _per(before, _sample(stand.gateway_pid), args.logins)
        before = _sample(stand.gateway_pid)
        run = wrk(stand.url, "healthz.lua", duration=3, connections=32, pid=stand.gateway_pid)
        results["parts"]["bare request"] = _per(before, _sample(stand.gateway_pid), run["requests"])
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"anatomy-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    m = results["machine"]
    print(f"{m['date']}  commit {m['commit']} + {m['uncommitted_src_files']} uncommitted files")
    parts = results["parts"]
    keys = sorted({key for part in parts.values() for key in part}, key=lambda k: (k.startswith("thread"), k))
    print("| per unit | " + " | ".join(parts) + " |")
    print("|---|" + "---:|" * len(parts))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{part.get(key, 0.0):.3f}" for part in parts.values()) + " |")
    print(f"\nfull results: {out}")


if __name__ == "__main__":
    main()
