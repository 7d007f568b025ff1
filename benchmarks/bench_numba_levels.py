"""The fused CPU TV-L1's pyramid levels as one compiled call each (`_numba_level.solve_level`, the
default) against the same loop driven from Python kernel by kernel (`compiled_levels=False`).

    python benchmarks/bench_numba_levels.py                       # 128x128, 256x256, 340x256
    python benchmarks/bench_numba_levels.py --sizes 256x256 --rounds 9

One thread, the same real frame pairs through both solvers in alternation, round after round (a
change in machine load hits both alike); each round's ms per pair is the mean over the pairs, and the
table gives the medians and the best of the rounds, and the median of the per-round ratios. The flows
are checked equal bit for bit on the way. Then one level alone (`--levels`): each level size solved
from the same random initial flow by both paths in alternation, the best of 21 runs per pair, which
shows the time saved per level where a whole pair's ratio is within the machine's noise.
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


def level_us(h: int, w: int, pairs: int, runs: int = 21) -> dict[str, float]:
    """us of one level of h x w solved by each path (the best of `runs` per pair, averaged over the
    pairs), from the same random initial flow every run."""
    from flowprep.flow.numba_tvl1 import FusedTVL1Solver
    from flowprep.flow.opencv_tvl1 import OPENCV_TVL1_DEFAULTS

    solver = FusedTVL1Solver(dict(OPENCV_TVL1_DEFAULTS))
    paths = {"compiled": solver._one_scale_compiled, "python": solver._one_scale_py}
    ws = solver._workspace(h, w)
    u0 = np.random.default_rng(0).normal(0, 0.5, (2, h, w)).astype(np.float32)
    best = dict.fromkeys(paths, 0.0)
    for a, b in zip(*real_pairs(pairs, h, w)):
        a, b = a.astype(np.float32), b.astype(np.float32)
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        for r in range(runs):
            for name in list(paths) if r % 2 else list(paths)[::-1]:
                ws.u1[:], ws.u2[:] = u0
                t0 = time.perf_counter()
                paths[name](a, b, ws)
                seconds[name].append(time.perf_counter() - t0)
        for name in paths:
            best[name] += 1e6 * min(seconds[name]) / pairs
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8, help="pairs per size")
    parser.add_argument("--sizes", default="128x128,256x256,340x256", help="WxH list")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--levels", default="340x256,256x256,128x128,64x64,32x32,16x16", help="WxH list, '' for none")
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    print("| pair | compiled levels ms/pair (median / best round) | Python-driven | speed-up (median of rounds) |")
    print("|---|---|---|---|")
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        ms = rounds_ms(*real_pairs(args.pairs, h, w), args.rounds)
        ratio = np.median(np.array(ms["python"]) / np.array(ms["compiled"]))
        cells = [f"{np.median(ms[name]):.2f} / {min(ms[name]):.2f}" for name in ("compiled", "python")]
        print(f"| {size} | {cells[0]} | {cells[1]} | {ratio:.3f}x |", flush=True)
    if args.levels:
        print("\n| one level | compiled us | Python-driven us | saved us |\n|---|---|---|---|")
    for size in filter(None, args.levels.split(",")):
        w, h = (int(v) for v in size.split("x"))
        us = level_us(h, w, min(args.pairs, 4))
        print(
            f"| {size} | {us['compiled']:.0f} | {us['python']:.0f} | {us['python'] - us['compiled']:.0f} |", flush=True
        )


if __name__ == "__main__":
    main()
