"""Markdown tables from the JSON files in bench/results/ (for docs/performance.md).

.venv/bin/python -m bench.report bench/results/http-….json [bench/results/memory-….json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.wrkrun import breakdown


def http(results: dict[str, Any]) -> str:
    summary = results.get("summary", {})
    lines: list[str] = []
    bare_ms = summary.get("bare_cpu_ms_per_request", {}).get("value")
    if "healthz" in summary:
        lines += [
            "Summary (median over the interleaved rounds; the range is the lowest and highest round):",
            "",
            "| scenario | ratio to /healthz (median) | range | req/s (median) | p99 ms (median) "
            "| gateway CPU ms per request | = bare requests |",
            "|---|---:|---|---:|---:|---:|---:|",
        ]
        for name, row in summary.items():
            if name == "bare_cpu_ms_per_request":
                continue
            lines.append(
                f"| {name} | {row['ratio_median']:.2f} | {row['ratio_min']:.2f} to {row['ratio_max']:.2f} "
                f"| {row['rps_median']:.0f} | {row['p99_ms_median']:.1f} | {row['cpu_ms_per_request']:.3f} "
                f"| {row['bare_requests']:.2f} |"
            )
        lines.append("")
    else:
        lines += [
            f"what-if: {results.get('whatif') or 'none (the code as it is)'}; "
            f"bare endpoint (mean of the two /healthz runs): {results['healthz_mean_rps']:.0f} req/s",
            "",
        ]
    lines += [
        "| run | req/s | ratio to /healthz | p50 ms | p99 ms | non-2xx | socket errors | gateway CPU (cores) "
        "| machine busy (of 2) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["wrk"].items():
        errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]
        lines.append(
            f"| {name} | {r['rps']:.0f} | {r['ratio_to_healthz']:.2f} | {r['lat_p50_us'] / 1000:.1f} "
            f"| {r['lat_p99_us'] / 1000:.1f} | {r['err_status']} | {errors} | {r.get('gateway_cores', '')} "
            f"| {r.get('machine_busy_cores', '')} |"
        )
    lines += [
        "",
        "| logins | concurrency | logins/s | gateway CPU ms per login | = bare requests | p50 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = ["logins_sequential_after_load", "logins_sequential", "logins_concurrent"]
    for key in [key for key in keys if key in results]:
        r = results[key]
        cpu = r["gateway_cpu_ms_per_login"]
        in_bare = f"{cpu / bare_ms:.0f}" if bare_ms else ""
        when = "right after the load" if key.endswith("_after_load") else "rested"
        lines.append(
            f"| {r['logins']} ({when}) | {r['concurrency']} | {r['per_second']:.1f} | {cpu:.1f} | {in_bare} "
            f"| {r['latency_ms_p50']:.0f} | {r['latency_ms_p99']:.0f} |"
        )
    if "machine_loop_ms_rested" in results:
        lines.append(
            f"\nThe machine's speed (a fixed pure-Python loop): {results['machine_loop_ms_after_load']:.0f} ms "
            f"right after the load, {results['machine_loop_ms_rested']:.0f} ms rested."
        )
    lines.append(
        f"\nRSS of the worker: {results['rss_mib_start']:.0f} MiB at start, "
        f"{results['rss_mib_end']:.0f} MiB at the end of the run."
    )
    return "\n".join(lines)


def profiles(names: list[str]) -> str:
    lines = []
    for name in names:
        lines.append(f"\n`{name}` — share of the event loop's busy samples (inclusive):\n")
        lines.append("| where | % |")
        lines.append("|---|---:|")
        for label, pct in breakdown(f"profile-{name}"):
            lines.append(f"| {label} | {pct:.1f} |")
    return "\n".join(lines)


def memory(results: dict[str, Any]) -> str:
    lines = [
        f"token pool: {results['token_pool']} distinct valid tokens; RSS after start-up and one login "
        f"{results['rss_mib_after_start']:.1f} MiB; after issuing the pool (/token) "
        f"{results['rss_mib_before_introspection']:.1f} MiB",
        "",
        "| introspections | RSS MiB | req/s in that run | p99 ms | non-2xx | gateway CPU (cores) | machine busy (of 2) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results["samples"]:
        lines.append(
            f"| {s['introspections']:,} | {s['rss_mib']:.1f} | {s['rps']:.0f} | {s['p99_ms']:.0f} | {s['non2xx']} "
            f"| {s.get('gateway_cores', '')} | {s.get('machine_busy_cores', '')} |"
        )
    return "\n".join(lines)


def main() -> None:
    for arg in sys.argv[1:]:
        data = json.loads(Path(arg).read_text())
        print(f"\n<!-- {arg} -->")
        if "wrk" in data:
            print(http(data))
            if "profiles" in data:
                print(profiles(list(data["profiles"])))
        elif "samples" in data:
            print(memory(data))


if __name__ == "__main__":
    main()
