"""A/B of `bench_extract.py` between two checkouts, interleaved: does a change slow the default path?

    git archive <base-commit> | tar -x -C /tmp/base
    python benchmarks/ab_checkouts.py --base /tmp/base --rounds 4 -- --max-frames 40 --flow-backend numba

Runs the other checkout's and this checkout's `benchmarks/bench_extract.py` (each importing its own
`flowprep`, through PYTHONPATH) one after the other, `--rounds` times, and prints per run the
videos/hour it reports and the CPU seconds (user + sys) the run used. On a shared machine wall time
swings with the neighbours' load; CPU seconds much less, so the CPU ratio is the one to read. One
warm-up run per side comes first and is not counted (numba compiles its kernels into a cache per
checkout on first use).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def run(checkout: Path, bench_args: list[str]) -> tuple[float, float]:
    """(videos/hour, CPU seconds) of one bench_extract.py run of `checkout`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run(
        [sys.executable, str(checkout / "benchmarks" / "bench_extract.py"), *bench_args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd="/tmp",
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(re.findall(r"videos/hour: ([0-9.]+)", out)[-1]), cpu_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the other checkout (a folder holding flowprep/)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("bench_args", nargs="*", help="arguments of bench_extract.py (after --)")
    args = parser.parse_args()
    sides = {"base": Path(args.base).resolve(), "this": HERE}
    for checkout in sides.values():  # warm-up: numba's cache, the page cache
        run(checkout, args.bench_args)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    print(
        f"`python benchmarks/ab_checkouts.py --base {args.base} --rounds {args.rounds} -- "
        f"{' '.join(args.bench_args)}`\n\n| round | side | videos/hour | CPU s |\n|---|---|---|---|"
    )
    for round_index in range(args.rounds):
        order = list(sides) if round_index % 2 == 0 else list(sides)[::-1]  # ABBA: drift cancels
        for name in order:
            rate, cpu_s = run(sides[name], args.bench_args)
            results[name].append((rate, cpu_s))
            print(f"| {round_index + 1} | {name} | {rate:.0f} | {cpu_s:.1f} |", flush=True)
    median = {
        name: (statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in results.items()
    }
    print(
        f"\nmedians: base {median['base'][0]:.0f} videos/hour, {median['base'][1]:.1f} CPU s; "
        f"this {median['this'][0]:.0f} videos/hour, {median['this'][1]:.1f} CPU s; "
        f"this / base: videos/hour {median['this'][0] / median['base'][0]:.3f}x, "
        f"CPU seconds {median['this'][1] / median['base'][1]:.3f}x"
    )


if __name__ == "__main__":
    main()
