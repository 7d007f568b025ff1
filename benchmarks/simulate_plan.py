"""Simulate a Kinetics-400-sized job's plan on a large cluster: planned makespan vs total work / workers.

No TV-L1 runs: each frame pair costs a stand-in time (the fused CPU backend's measured 0.145 s per
256x256 pair, `benchmarks/results/flow_cpu_fused.md`), perturbed per video by +-10% (content), plus
decode (2.5 ms a frame converted, 0.6 ms a frame a range skips) and 0.5 s of start-up per job. The
planner sees only the container's frame counts, as in a real job; the simulated workers pay the true
cost. Jobs are list-scheduled as the executors run them (`plan.simulate`).

    python benchmarks/simulate_plan.py --out docs/scale-out-simulation.md
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from flowprep.plan import Task, cut_tasks, simulate

PAIR_S = 0.145  # s per 256x256 frame pair, numba backend, one core
DECODE_S, SKIP_S, JOB_START_S = 0.0025, 0.0006, 0.5


def kinetics_like(videos: int, seed: int = 0) -> np.ndarray:
    """Frame counts: 85% ~10 s clips at 25 / 29.97 / 30 fps, 14% shorter (2-10 s), 1% of 1-10 minutes."""
    rng = np.random.default_rng(seed)
    fps = rng.choice([25.0, 29.97, 30.0], size=videos)
    seconds = rng.uniform(9.5, 10.0, size=videos)
    kind = rng.random(videos)
    seconds[kind < 0.15] = rng.uniform(2.0, 10.0, size=(kind < 0.15).sum())
    seconds[kind < 0.01] = rng.uniform(60.0, 600.0, size=(kind < 0.01).sum())
    return np.maximum(2, np.round(seconds * fps)).astype(int)


def run(videos: int, workers: int, videos_per_task: int, seed: int = 0) -> dict:
    frames = kinetics_like(videos, seed)
    noise = np.random.default_rng(seed + 1).uniform(0.9, 1.1, size=videos)
    partitions = ["train" if i % 10 else "val" for i in range(videos)]
    pairs = [int(f) - 1 for f in frames]

    def seconds_of(task: Task, k: int | None) -> float:
        if k is None:
            return JOB_START_S + sum(pairs[i] * PAIR_S * noise[i] + frames[i] * DECODE_S for i in task.items)
        (i,) = task.items
        first, end = task.ranges[k].first, task.ranges[k].end or pairs[i]
        return JOB_START_S + (end - first) * (PAIR_S * noise[i] + DECODE_S) + first * SKIP_S

    total_s = sum(pairs[i] * PAIR_S * noise[i] + frames[i] * DECODE_S for i in range(videos))
    result = {"videos": videos, "workers": workers, "pairs": int(sum(pairs)), "ideal_s": total_s / workers}
    for name, tasks in (("work", None), ("count", None)):
        t0 = time.perf_counter()
        if name == "work":
            tasks = cut_tasks(list(range(videos)), partitions, pairs, [1.0] * videos, workers, videos_per_task)
        else:  # the older plan: groups of videos_per_task in order, run in order
            tasks = [
                Task(n, "all", tuple(range(s, min(s + videos_per_task, videos))), 0.0)
                for n, s in enumerate(range(0, videos, videos_per_task))
            ]
        plan_s = time.perf_counter() - t0
        makespan = simulate(tasks, workers, seconds_of)
        result[name] = {
            "tasks": len(tasks),
            "split_videos": sum(t.is_ranged for t in tasks),
            "jobs": sum(len(t.ranges) + 1 if t.ranges else 1 for t in tasks),
            "smallest_task_videos": min(len(t.items) for t in tasks),
            "median_task_videos": int(np.median([len(t.items) for t in tasks])),
            "makespan_s": makespan,
            "ratio": makespan / result["ideal_s"],
            "plan_s": plan_s,
        }
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| videos | workers | plan | tasks | split videos | jobs | videos per task (median / min) | "
        "makespan (h) | total work / workers (h) | makespan / ideal |",
        "|" + "---|" * 10,
    ]
    for r in results:
        for name in ("work", "count"):
            p = r[name]
            lines.append(
                f"| {r['videos']:,} | {r['workers']} | {name} | {p['tasks']:,} | {p['split_videos']} | "
                f"{p['jobs']:,} | {p['median_task_videos']} / {p['smallest_task_videos']} | "
                f"{p['makespan_s'] / 3600:.2f} | {r['ideal_s'] / 3600:.2f} | {p['ratio']:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=240_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[512, 64])
    parser.add_argument("--videos-per-task", type=int, default=32)
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    results = [run(args.videos, w, args.videos_per_task) for w in args.workers]
    text = (
        f"Command: `python benchmarks/simulate_plan.py {' '.join(f'--workers {w}' for w in args.workers)}`"
        f" (stand-in cost {PAIR_S} s per pair, +-10% per video)\n\n{table(results)}\n"
    )
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
