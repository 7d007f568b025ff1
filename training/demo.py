"""The CPU demo: on `sample` (classes differ only by motion), what flow and distillation buy over RGB alone.

generate the sample videos -> extract them (the work plan's shard layout, as `flowprep extract` does)
-> for each seed: train a flow teacher, an RGB-only baseline (CE) and an RGB student distilled from that
seed's frozen teacher (paper 002's Dual-action loss) -> evaluate everything on the test videos -> print a
markdown table: per seed, and the mean over seeds with a 95% t-interval, plus the paired differences.

The defaults are the regime distillation is for (docs/training.md#the-demo has the measurements):
- few labels: split "2" of `sample` trains on 4 videos per class and tests on the other 12 (48 videos);
- a loss over every stage (Dual-action), not only the pooled vector (MARS);
- motion that varies within a video (`motion="varying"`).
Five seeds, because 48 test videos move a single run by several points; `--motion-set spin_zoom` runs the
same, untuned, on rotation and zoom instead of drift. Horizontal flip is off: it would turn `drift_left`
into `drift_right` (and `rotate_cw` into `rotate_ccw`). No validation: cosine schedule, `last.pt` is tested.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev

from flowprep.cli_config import coerce_fields
from flowprep.cli_config import option as _f
from flowprep.datasets.sample import MOTION_SETS, MOTIONS

from .config import EvalConfig, TrainConfig, write_config

# Small enough for 2 CPU cores in a few minutes, faithful in everything else (loader, losses, loops).
EXTRACT = {
    "dataset": "sample",
    "executor": "inline",
    "size_px": 48,
    "workers": 1,
    "videos_per_task": 8,
    "flow_backend": "opencv",  # the tables' flow
    "flow_params": (("nscales", 3), ("warps", 2)),
}  # the drift is 0.25-2.9 px/frame at 48 px
TRAIN = {
    "model": "resnet3d_tiny",
    "frames": 8,
    "crop_size": 40,
    "batch_size": 8,
    "flip": False,
    "lr": 0.05,
    "lr_schedule": "cosine",
    "val_fraction": 0.0,
    "log_every": 0,
    "device": "cpu",
    "resume": False,
}
EVAL = {"frames": 8, "crop_size": 40, "batch_size": 16, "test_clips": 3, "device": "cpu"}
# Two-sided 95% quantiles of Student's t with n - 1 degrees of freedom (any table, e.g. NIST/SEMATECH
# e-Handbook 1.4.2.13): the interval of a mean over n seeds is mean +- t * sd / sqrt(n).
T_975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}
LOSS_NAMES = {"mars": "MARS", "imrs": "IMRS", "dual_action": "Dual-action"}


@dataclass(frozen=True)
class DemoConfig:
    """The demo's knobs; the defaults are the demo. Other values reproduce the ablations of docs/training.md."""

    out: str = _f("", "working folder: videos, shards, one folder per run and seed, table.md, config.json")
    epochs: int = _f(24, "epochs of every run (split 2: 16 training videos, batch 8 -> 2 SGD steps per epoch)")
    seeds: tuple[int, ...] = _f(
        (0, 1, 2, 3, 4),
        "comma-separated seeds; each trains a teacher, a baseline and a student (distilled from that seed's teacher)",
    )
    workers: int = _f(1, "DataLoader workers per run")
    motion: str = _f("varying", "sample videos: varying (speed swings within a video) or constant", MOTIONS)
    motion_set: str = _f(
        "drift",
        "sample classes: drift (4 directions) or spin_zoom (rotate cw / ccw, zoom in / "
        "out), the set the defaults were not tuned on",
        tuple(MOTION_SETS),
    )
    split: str = _f("2", "sample split: 2 = few labels (4 train / 12 test videos per class), 1 = 12 / 4", ("1", "2"))
    # alpha 20, not the paper's 50: 50 balances CE against 3D-ResNet-101's features; the tiny net's start at
    # MAE ~1, where 50 drowns CE (mean video top-1 over seeds 0-2: 0.60 at 50, 0.79 at 20, 0.67 at 10).
    student_loss: str = _f("dual_action", "the student's loss", tuple(LOSS_NAMES))
    student_loss_args: dict = _f({"alpha": 20}, "JSON keyword arguments of the student's loss")
    # 48 SGD steps from scratch are chaotic: another float summation order (torch's intra-op thread count)
    # moved seed 0's student from 0.562 to 0.854 video top-1. One thread gives one table on any core count.
    torch_threads: int = _f(1, "torch intra-op threads of the runs (1: the same table whatever the core count)")

    def __post_init__(self):
        coerce_fields(self)  # a typo in --student-loss-args fails here, not after the teacher has trained
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds {self.seeds!r}: the demo needs distinct seeds (five or more for its interval)")

    @property
    def seed_list(self) -> tuple[int, ...]:
        return self.seeds


def streams(cfg: DemoConfig) -> tuple:
    """(run name, recipe, TrainConfig fields of its own, what the table calls it, input at test time) per stream."""
    return (
        ("teacher", "teacher", {}, "flow teacher (CE)", "flow"),
        ("baseline", "baseline", {}, "RGB baseline (CE)", "RGB"),
        (
            "student",
            "student",
            {"loss": cfg.student_loss, "loss_args": cfg.student_loss_args},
            f"RGB student ({LOSS_NAMES[cfg.student_loss]}, frozen teacher)",
            "RGB",
        ),
    )


def run_dir(root: Path, run: str, seed: int) -> Path:
    return root / run / f"seed{seed}"


def extract_sample(cfg: DemoConfig, root: Path) -> Path:
    """Generates the `sample` videos under ROOT/videos and extracts them into ROOT/shards (in this process)."""
    from flowprep.config import ExtractConfig
    from flowprep.datasets.sample import generate
    from flowprep.runner import run_extract

    shards = root / "shards"
    generate(root / "videos", motion=cfg.motion, motion_set=cfg.motion_set)  # listed as generated
    # Like every run below (resume off), the extraction starts over: resuming shards of another
    # --motion or --split run in the same folder would keep the old videos' flow.
    shutil.rmtree(shards, ignore_errors=True)
    summary = run_extract(
        ExtractConfig(**EXTRACT, split=cfg.split, root=str(root / "videos"), out=str(shards)), show_progress=False
    )
    if summary["failed"]:
        raise RuntimeError(f"{summary['failed']} sample videos failed to extract: see {shards}/manifest.parquet")
    return shards


def run_demo(cfg: DemoConfig) -> dict:
    """Runs the whole demo under `cfg.out`; returns {"table": markdown, "results": {run: {seed: metrics}}, ...}."""
    from .evaluate import evaluate_checkpoint
    from .train import train

    if not cfg.out:  # checked here, not when built: `DemoConfig()` is the demo's defaults, out to be chosen
        raise ValueError("the demo needs --out")
    root = Path(cfg.out)
    write_config(cfg, root)
    import torch

    torch.set_num_threads(cfg.torch_threads)  # the demo is its own entry point: see DemoConfig.torch_threads
    t0 = time.perf_counter()
    shards = extract_sample(cfg, root)
    seconds = {"extract": time.perf_counter() - t0}
    common = {"data": str(shards), "split": cfg.split, "workers": cfg.workers}
    results: dict[str, dict[int, dict]] = {}
    for seed in cfg.seeds:
        for run, recipe, own, _, _ in streams(cfg):
            t0 = time.perf_counter()
            fields = {**own, "teacher": str(run_dir(root, "teacher", seed) / "last.pt")} if run == "student" else own
            out_dir = run_dir(root, run, seed)
            train(TrainConfig(mode=recipe, **common, **TRAIN, seed=seed, epochs=cfg.epochs, **fields, out=str(out_dir)))
            results.setdefault(run, {})[seed] = evaluate_checkpoint(
                EvalConfig(**common, **EVAL, checkpoint=str(out_dir / "last.pt"), out=str(out_dir / "eval"))
            )
            seconds[run] = seconds.get(run, 0.0) + time.perf_counter() - t0
    table = markdown_table(cfg, results)
    (root / "table.md").write_text(table)
    (root / "results.json").write_text(
        json.dumps(
            {
                run: {str(s): {k: r[k] for k in ("clip_top1", "video_top1", "num_videos")} for s, r in by_seed.items()}
                for run, by_seed in results.items()
            },
            indent=2,
        )
        + "\n"
    )
    (root / "timings.json").write_text(json.dumps(seconds, indent=2))
    print(table)
    return {"table": table, "results": results, "seconds": seconds}


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of its 95% t-interval) over seeds; half-width nan for one seed."""
    n = len(values)
    if n < 2:
        return mean(values), float("nan")
    return mean(values), T_975.get(n, 1.96) * stdev(values) / n**0.5


def fmt(values: list[float]) -> str:
    m, half = interval(values)
    return f"{m:.3f} ± {half:.3f}"


def markdown_table(cfg: DemoConfig, results: dict[str, dict[int, dict]]) -> str:
    """One row per stream: video top-1 per seed, then mean ± 95% interval of video and clip top-1; then the
    paired differences (same seed) that the claims are about."""
    seeds = sorted(cfg.seeds)
    rows = [
        f"| model | input at test | video top-1 (seeds {', '.join(map(str, seeds))}) | video top-1, mean ± 95% CI "
        "| clip top-1, mean ± 95% CI |",
        "|---|---|---|---|---|",
    ]
    top1 = {run: [results[run][s]["video_top1"] for s in seeds] for run in results}
    for run, _, _, name, modality in streams(cfg):
        clip = [results[run][s]["clip_top1"] for s in seeds]
        rows.append(
            f"| {name} | {modality} | {' / '.join(f'{v:.3f}' for v in top1[run])} | {fmt(top1[run])} | {fmt(clip)} |"
        )
    for a, b in (("student", "baseline"), ("teacher", "baseline"), ("teacher", "student")):
        diff = [x - y for x, y in zip(top1[a], top1[b])]
        rows.append(f"| {a} − {b} (paired) | | {' / '.join(f'{v:+.3f}' for v in diff)} | {fmt(diff)} | |")
    return (
        f"`sample` ({cfg.motion_set}, {cfg.motion} motion), split {cfg.split}, {cfg.epochs} epochs, "
        f"{len(seeds)} seeds; {results['teacher'][seeds[0]]['num_videos']} test videos.\n\n" + "\n".join(rows) + "\n"
    )
