"""The fused CPU TV-L1's pyramid levels as one compiled call each (`_numba_level.solve_level`, the
default) against the same loop driven from Python kernel by kernel (`compiled_levels=False`).

    python benchmarks/bench_numba_levels.py                       # 128x128, 256x256, 340x256
    python benchmarks/bench_numba_levels.py --sizes 256x256 --rounds 9

One thread, the same real frame pairs through both solvers in alternation, round after round (a
change in machine load hits both alike); each round's ms per pair is the mean over the pairs, and the
table gives the medians over rounds and the median of the per-round ratios. The flows are checked
equal bit for bit on the way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_flow_backends import real_pairs  # noqa: E402  (the same frames as the other benchmarks)


def rounds_ms(prev, nxt, rounds: int) -> dict[str, list[float]]:
    """ms per pair of each solver, one entry per round, the solvers alternated pair by pair."""
    from flowprep.flow.numba_tvl1 import FusedTVL1Solver
    from flowprep.flow.opencv_tvl1 import OPENCV_TVL1_DEFAULTS

    solvers = {
        "compiled": FusedTVL1Solver(dict(OPENCV_TVL1_DEFAULTS)),
        "python": FusedTVL1Solver(dict(OPENCV_TVL1_DEFAULTS), compiled_levels=False),
    }
    frames = [(a.astype(np.float32), b.astype(np.float32)) for a, b in zip(prev, nxt)]
    for a, b in frames:  # warm (workspaces of every level size), and the same bits
        flows = [solver(a, b) for solver in solvers.values()]
        assert np.array_equal(*flows), "compiled and Python-driven levels differ"
    ms: dict[str, list[float]] = {name: [] for name in solvers}
    for r in range(rounds):
        seconds = dict.fromkeys(solvers, 0.0)
        order = list(solvers) if r % 2 == 0 else list(solvers)[::-1]
        for a, b in frames:
            for name in order:
                t0 = time.perf_counter()
                solvers[name](a, b)
                seconds[name] += time.perf_counter() - t0
        for name in solvers:
            ms[name].append(1e3 * seconds[name] / len(frames))
    return ms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8, help="pairs per size")
    parser.add_argument("--sizes", default="128x128,256x256,340x256", help="WxH list")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    print("| size | compiled levels ms/pair | Python-driven ms/pair | speed-up (median of rounds) |")
    print("|---|---|---|---|")
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        ms = rounds_ms(*real_pairs(args.pairs, h, w), args.rounds)
        ratio = np.median(np.array(ms["python"]) / np.array(ms["compiled"]))
        print(
            f"| {size} | {np.median(ms['compiled']):.2f} | {np.median(ms['python']):.2f} | {ratio:.3f}x |", flush=True
        )


if __name__ == "__main__":
    main()
