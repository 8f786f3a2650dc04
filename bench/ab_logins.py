"""Two versions of the gateway measured side by side: CPU per login, paired block by block.

On a shared machine whose speed moves by tens of percent within minutes, two runs a minute apart
cannot tell a 10 % change from the drift. Here both versions run at once, each as its own stand
(its own database, stand-in ACM and `leerid-gateway serve`), and the logins alternate between them
in short blocks (A then B, then B then A, ...): each pair of blocks meets the same machine. The
figure is the median of the pairs' ratios, with how many pairs agree on the sign.

    .venv/bin/python -m bench.ab_logins --b /path/to/other/checkout/src

A and B are `src/` directories (PYTHONPATH for the gateway and its `migrate`); A is this
checkout's by default. Results: bench/results/ab-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path
from typing import Any

from bench.http_bench import logins
from bench.stand import ROOT, Stand, machine
from bench.wrkrun import save_results


def _paired(stands: dict[str, Stand], blocks: int, per_block: int, concurrency: int) -> dict[str, Any]:
    asyncio.run(logins(stands["a"], per_block, concurrency))  # warm-up, not counted
    asyncio.run(logins(stands["b"], per_block, concurrency))
    cpu: dict[str, list[float]] = {"a": [], "b": []}
    for block in range(blocks):
        for side in ("a", "b") if block % 2 == 0 else ("b", "a"):
            run = asyncio.run(logins(stands[side], per_block, concurrency))
            cpu[side].append(run["gateway_cpu_ms_per_login"])
    ratios = sorted(b / a for a, b in zip(cpu["a"], cpu["b"], strict=True) if a > 0)
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return {
        "concurrency": concurrency,
        "blocks": blocks,
        "logins_per_block": per_block,
        "a_ms_median": statistics.median(cpu["a"]),
        "b_ms_median": statistics.median(cpu["b"]),
        "ratio_b_to_a_median": statistics.median(ratios),
        "ratio_quartiles": [quartiles[0], quartiles[2]],
        "blocks_b_cheaper": sum(1 for r in ratios if r < 1),
        "a_ms": cpu["a"],
        "b_ms": cpu["b"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--a", type=Path, default=ROOT / "src", help="src/ of version A (default: this checkout)"
    )
    parser.add_argument("--b", type=Path, required=True, help="src/ of version B")
    parser.add_argument("--blocks", type=int, default=60, help="blocks per version and concurrency")
    parser.add_argument(
        "--per-block", type=int, default=None, help="logins per block (default: 12, or 4 per browser)"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--grow",
        type=int,
        default=0,
        help="first run this many browsers at once on each stand, as a busy minute would (its "
        "database pool then holds that many connections, up to the pool size)",
    )
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": machine(),
        "a": str(args.a),
        "b": str(args.b),
        "grow": args.grow,
        "runs": [],
    }
    with (
        Stand("leerid_bench_a", PYTHONPATH=str(args.a.resolve())) as a,
        Stand("leerid_bench_b", PYTHONPATH=str(args.b.resolve())) as b,
    ):
        if args.grow:
            for stand in (a, b):
                asyncio.run(logins(stand, 10 * args.grow, args.grow))
        for concurrency in args.concurrency:
            per_block = args.per_block or max(12, 4 * concurrency)
            run = _paired({"a": a, "b": b}, args.blocks, per_block, concurrency)
            results["runs"].append(run)
            print(
                f"concurrency {concurrency}: A {run['a_ms_median']:.2f} ms, B {run['b_ms_median']:.2f} ms per login"
                f" (medians of {args.blocks} blocks of {per_block}); B/A {run['ratio_b_to_a_median']:.3f}"
                f" (quartiles {run['ratio_quartiles'][0]:.3f} to {run['ratio_quartiles'][1]:.3f}),"
                f" B cheaper in {run['blocks_b_cheaper']} of {args.blocks} pairs",
                flush=True,
            )
    path = save_results("ab", results)
    print(f"\nfull results: {path}")


if __name__ == "__main__":
    main()
