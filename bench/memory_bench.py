"""Issue 5: resident memory of one gateway worker over 1,000,000 introspections.

Half the introspections are valid tokens from a pool of 30,000 distinct tokens, larger than the
caches (LEERID_INTROSPECTION_CACHE_SIZE, default 20,000 verified tokens and 20,000 jti states): 80%
of them cycle through a hot set of 15,000, 20% are drawn from the whole pool, so the caches fill
and keep evicting. The other half are garbage (random strings, and forged signatures on a real
token's header and claims), which must never be cached. (A pool cycled in order and larger than
the cache defeats any LRU: every valid token then costs a signature check and a database read.) RSS is read from
/proc/PID/status after each 20-second wrk run (wrk -t1 -c32).

    .venv/bin/python -m bench.memory_bench      # ~8 minutes
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.stand import Stand, machine, rss_mib
from bench.wrkrun import RESULTS, basic, save_results, wrk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--pool", type=int, default=30_000, help="distinct valid tokens (> cache size)")
    parser.add_argument("--hot", type=int, default=15_000, help="of which cycled through (< cache size)")
    parser.add_argument("--chunk", type=int, default=20, help="seconds per wrk run")
    args = parser.parse_args()

    results: dict[str, Any] = {"machine": machine(), "samples": []}
    RESULTS.mkdir(exist_ok=True)
    pool_file = RESULTS / "token-pool.txt"
    pool_file.unlink(missing_ok=True)
    with Stand(keep_log=False) as stand:
        pid = stand.gateway_pid
        cookie = stand.login("lotte")
        results["rss_mib_after_start"] = rss_mib(pid)
        env = {
            "BENCH_BASIC": basic(stand.client_id, stand.client_secret),
            "BENCH_COOKIE": cookie,
            "BENCH_TOKEN_FILE": str(pool_file),
            "BENCH_HOT": str(args.hot),
        }
        for _ in range(8):
            wrk(stand.url, "token.lua", duration=15, connections=32, env=env)
            if len(pool_file.read_text().splitlines()) >= args.pool:
                break
        tokens = pool_file.read_text().splitlines()
        results["token_pool"] = len(tokens)
        assert stand.introspect(tokens[0])["active"] is True
        assert stand.introspect(tokens[-1])["active"] is True
        results["rss_mib_before_introspection"] = rss_mib(pid)
        print(
            f"pool of {len(tokens)} tokens; RSS {results['rss_mib_before_introspection']:.1f} MiB", flush=True
        )

        done = 0
        while done < args.total:
            run = wrk(stand.url, "introspect_mix.lua", duration=args.chunk, connections=32, env=env, pid=pid)
            done += run["requests"]
            sample = {
                "introspections": done,
                "rss_mib": rss_mib(pid),
                "rps": run["rps"],
                "p99_ms": run["lat_p99_us"] / 1000,
                "non2xx": run["err_status"],
                "gateway_cores": run["gateway_cores"],
                "machine_busy_cores": run["machine_busy_cores"],
            }
            results["samples"].append(sample)
            print(sample, flush=True)
        assert stand.introspect(tokens[-1])["active"] is True
    pool_file.unlink(missing_ok=True)
    out = save_results("memory", results)
    print(f"\nfull results: {out}")


if __name__ == "__main__":
    main()
