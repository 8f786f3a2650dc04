"""Gateway CPU per login as *instructions* (valgrind's callgrind), not seconds: a count that does
not drift with the machine's load the way CPU time does on a shared machine (the same binary, code
and inputs give the same count within a fraction of a percent). Reported per login and as a ratio to
the bare endpoint (/healthz) counted in the same run, like every figure of bench/http_bench.py.

    .venv/bin/python -m bench.login_instructions               # ~6 minutes: valgrind is slow
    .venv/bin/python -m bench.login_instructions --logins 60

The stand is bench/stand.py's (PostgreSQL, production settings, the stand-in ACM) with the gateway
run under ``valgrind --tool=callgrind --instr-atstart=no``: start-up and warm-up run uninstrumented,
then ``callgrind_control`` turns counting on, zeroes, and dumps around each measured part. Counted:
user-space instructions of the gateway process (the kernel's share, ~11 % of its CPU time, is not).
Before/after comparisons: run it with ``PYTHONPATH=<other checkout>/src`` (bench/stand.py passes it on).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.http_bench import logins
from bench.stand import CLI, Stand, machine
from bench.wrkrun import save_results

_TOTALS = re.compile(r"^(?:totals|summary):\s+(\d+)", re.M)


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


def _counted(pid: int, out_dir: Path, work: object, keep: Path | None = None) -> int:
    """Instructions the gateway executed during ``work()``; with ``keep``, the dump is copied there
    (for ``callgrind_annotate --inclusive=yes``)."""
    for old in out_dir.glob("callgrind.out.*"):
        old.unlink()
    _control(pid, "-z")
    work()  # type: ignore[operator]
    _control(pid, "-d")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for dump in out_dir.glob("callgrind.out.*"):
            found = _TOTALS.search(dump.read_text(errors="replace"))
            if found:
                if keep is not None:
                    keep.write_bytes(dump.read_bytes())
                return int(found.group(1))
        time.sleep(0.2)
    raise RuntimeError("callgrind wrote no dump")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=120)
    parser.add_argument("--bare", type=int, default=400, help="/healthz requests counted")
    parser.add_argument("--keep", type=Path, help="folder to keep the callgrind dumps in")
    args = parser.parse_args()
    keep: dict[str, Path | None] = {"bare": None, "sequential": None, "concurrent": None}
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        keep = {name: args.keep / f"callgrind.{name}" for name in keep}
    out_dir = Path(tempfile.mkdtemp(prefix="callgrind-"))
    serve = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_dir}/callgrind.out.%p",
        sys.executable,
        CLI,
    ]
    with Stand("leerid_bench_instructions", serve=serve, start_timeout=600) as stand:
        pid = stand.gateway_pid
        asyncio.run(logins(stand, 30, 1))  # uninstrumented warm-up: pools, caches, prepared statements
        _control(pid, "-i", "on")
        asyncio.run(logins(stand, 10, 1))  # instrumented warm-up (valgrind translates code once)

        def bare() -> None:
            with httpx.Client(timeout=60) as http:
                for _ in range(args.bare):
                    assert http.get(f"{stand.url}/healthz").status_code == 200

        def sequential() -> None:
            asyncio.run(logins(stand, args.logins, 1))

        def concurrent() -> None:
            asyncio.run(logins(stand, args.logins, 8))

        per_bare = _counted(pid, out_dir, bare, keep["bare"]) / args.bare
        per_login = _counted(pid, out_dir, sequential, keep["sequential"]) / args.logins
        per_login_8 = _counted(pid, out_dir, concurrent, keep["concurrent"]) / args.logins
        per_bare_after = _counted(pid, out_dir, bare) / args.bare
    bare_median = (per_bare + per_bare_after) / 2
    results = {
        "machine": machine(),
        "logins": args.logins,
        "instructions_per_bare_request": [round(per_bare), round(per_bare_after)],
        "instructions_per_login_sequential": round(per_login),
        "instructions_per_login_8_browsers": round(per_login_8),
        "bare_requests_per_login_sequential": per_login / bare_median,
        "bare_requests_per_login_8_browsers": per_login_8 / bare_median,
    }
    out = save_results("instructions", results)
    m = results["machine"]
    print(f"{m['date']}  commit {m['commit']} + {m['uncommitted_src_files']} uncommitted files")
    print(f"bare request (/healthz): {per_bare / 1e6:.2f} M instructions (then {per_bare_after / 1e6:.2f} M)")
    for name, value in (("one at a time", per_login), ("8 browsers", per_login_8)):
        print(f"login, {name}: {value / 1e6:.1f} M instructions = {value / bare_median:.1f} bare requests")
    print(f"full results: {out}")


if __name__ == "__main__":
    main()
