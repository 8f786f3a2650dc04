"""Where a login's *Python* work goes, function by function: the bytecode instructions the gateway's
event loop executes per login, counted with ``sys.settrace`` opcode events (exact and repeatable,
like bench/login_instructions.py, but per Python function: its own and everything it called).

    .venv/bin/python -m bench.login_opcodes               # ~1 minute
    .venv/bin/python -m bench.login_opcodes --logins 60 --top 80 --by own

The stand is bench/stand.py's, with the gateway started through this module (``--serve``), which
installs a SIGUSR1 handler around ``leerid-gateway serve``: the first signal starts counting, the
second stops and writes the counts. Traced, a login takes ~50 times as long (the upstream timeouts are
seconds; nothing times out). What it does not see: work in C (the JSON and regex engines,
cryptography, asyncpg's and uvloop's Cython, the kernel). It is how session 9 found the names and
return_to checked character by character (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import pickle
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

Key = tuple[str, int, str]


def _serve() -> int:
    """``leerid-gateway serve`` with counting switched by SIGUSR1 (the event loop's thread only)."""
    from leerid_gateway.cli import main

    own: collections.Counter[CodeType] = collections.Counter()
    total: collections.Counter[CodeType] = collections.Counter()
    out = Path(os.environ["LOGIN_OPCODES_OUT"])
    on = False

    def tracer(frame: FrameType, event: str, _arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            own[frame.f_code] += 1
            seen: set[CodeType] = set()
            caller: FrameType | None = frame
            while caller is not None:  # each function on the stack once (recursion counts once)
                if caller.f_code not in seen:
                    seen.add(caller.f_code)
                    total[caller.f_code] += 1
                caller = caller.f_back
        return tracer

    def toggle(_signum: int, frame: FrameType | None) -> None:
        nonlocal on
        if on:
            sys.settrace(None)
            on = False
            counts = {
                (code.co_filename, code.co_firstlineno, code.co_qualname): (own[code], n)
                for code, n in total.items()
            }
            out.write_bytes(pickle.dumps(counts))
            return
        own.clear()
        total.clear()
        sys.settrace(tracer)
        while frame is not None:  # the frames already running (settrace sees new ones only)
            frame.f_trace = tracer
            frame.f_trace_opcodes = True
            frame = frame.f_back
        on = True

    signal.signal(signal.SIGUSR1, toggle)
    return main()


def _where(key: Key) -> str:
    path, line, name = key
    for marker in ("site-packages/", "src/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            path = path.split("/", 1)[1] if marker == "lib/python3." else path
            break
    return f"{path}:{line} {name}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=30)
    parser.add_argument("--top", type=int, default=50, help="functions listed")
    parser.add_argument("--by", choices=("incl", "own"), default="incl", help="the order of the list")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.serve:
        sys.argv = [sys.argv[0], *rest]
        sys.exit(_serve())

    from bench.http_bench import logins
    from bench.stand import Stand, machine

    out = Path(tempfile.mkdtemp(prefix="opcodes-")) / "counts.pickle"
    serve = [sys.executable, "-m", "bench.login_opcodes", "--serve"]
    env = {"LOGIN_OPCODES_OUT": str(out), "LEERID_SHUTDOWN_DRAIN_SECONDS": "0"}
    with Stand("leerid_bench_opcodes", serve=serve, **env) as stand:
        asyncio.run(logins(stand, 30, 1))  # uncounted warm-up: pools, caches, prepared statements
        os.kill(stand.gateway_pid, signal.SIGUSR1)
        time.sleep(0.5)
        asyncio.run(logins(stand, args.logins, 1))
        os.kill(stand.gateway_pid, signal.SIGUSR1)
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    counts: dict[Key, tuple[int, int]] = pickle.loads(out.read_bytes())
    everything = sum(own for own, _ in counts.values())
    m = machine()
    print(f"{m['date']}  commit {m['commit']} + {m['uncommitted_src_files']} uncommitted files")
    print(f"{everything / args.logins:,.0f} bytecode instructions per login (one at a time)")
    print("  incl.    own  function (incl.: it and everything it called)")
    column = 1 if args.by == "incl" else 0
    for key, (own, total) in sorted(counts.items(), key=lambda kv: -kv[1][column])[: args.top]:
        print(f"{100 * total / everything:5.1f} % {100 * own / everything:5.1f} %  {_where(key)}")


if __name__ == "__main__":
    main()
