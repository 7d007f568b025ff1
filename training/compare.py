"""Trains and evaluates several registry models on the same shards; writes one table and one plot.

    flowprep-train compare --data DIR --out runs/compare --models tsn_tiny,tsm_tiny,action_tiny,stm_tiny:twins

Each entry of `--models` is `name` or `name:mode` (mode: a recipe, as in `flowprep-train train --mode`,
e.g. `stm_r50:twins` for STM with Twins Training). Every run shares the data, clip and optimiser flags,
and goes through `train.train` then `evaluate.evaluate_checkpoint` (video-level accuracy over
`test_clips x test_crops`),
so the numbers are the ones `train` / `evaluate` would print. Outputs in OUT: `<entry>/train`,
`<entry>/eval`, `compare.json`, `compare.md` (the table) and `compare.png` (one figure, four panels).

FLOPs are counted as multiply-accumulates, the convention of the ACTION-Net and STM papers (TSN
ResNet-50, 8 segments at 224: 32.7 G here, "32.9G"/"33G" there), for one clip of `frames` x
`crop_size`^2, on the meta device (no compute). Clips/s is inference throughput of the trained model on
`device` with batches of `batch_size` random clips: a speed measurement, not part of any test.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flowprep.cli_config import option as _f

from .config import EvalConfig, TestProtocol, TrainConfig, write_config
from .models import MODELS, list_models
from .recipes import RECIPES

if TYPE_CHECKING:  # torch is imported where it is used, so the CLI can import CompareConfig cheaply
    import torch
    from torch import nn


@dataclass(frozen=True)
class CompareConfig(TrainConfig, TestProtocol):
    """TrainConfig's flags shared by every run, plus the list of models and the test protocol."""

    mode: str = _f("baseline", "default mode of the runs (an entry's ':mode' overrides it)", RECIPES.names)
    models: tuple[str, ...] = _f(
        ("tsn_tiny", "tsm_tiny", "action_tiny", "stm_tiny"), "comma-separated registry names, each `name[:mode]`"
    )
    eval_partitions: tuple[str, ...] = _f(("test",), "partitions the final evaluation reads")
    eval_split_name: str = _f("test", "videos whose splits[split] equals this are evaluated")
    speed_batches: int = _f(3, "timed inference batches for clips/s (after one untimed warm-up)")

    def check(self) -> None:
        super().check()
        parse_entries(self.models)


def parse_entries(models: str | Sequence[str]) -> list[tuple[str, str | None]]:
    """'a,b:twins' (or ("a", "b:twins")) -> [("a", None), ("b", "twins")]; unknown names or modes raise,
    listing the valid ones."""
    items = models.split(",") if isinstance(models, str) else models
    entries = []
    for item in (m.strip() for m in items):
        if not item:
            continue
        name, _, mode = item.partition(":")
        if name not in MODELS:
            raise ValueError(f"--models: unknown model {name!r}; choose from: {', '.join(list_models())}")
        if mode and mode not in RECIPES:
            raise ValueError(f"--models: {item!r} has unknown mode {mode!r}; choose one of {RECIPES.names()}")
        entries.append((name, mode or None))
    if not entries:
        raise ValueError("--models is empty: name at least one registry model")
    return entries


def clip_gflops(name: str, num_classes: int, in_channels: int, frames: int, crop_size: int) -> float:
    """Multiply-accumulates (G) of one forward over one clip (1, C, frames, crop, crop), built and run
    on the meta device so nothing is computed. Counts convolutions and matmuls (torch's FlopCounterMode),
    not element-wise ops or pooling."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .models import create_model

    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, in_channels=in_channels).eval()
        clip = torch.empty(1, in_channels, frames, crop_size, crop_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(clip)
    return counter.get_total_flops() / 2 / 1e9  # FlopCounterMode counts a multiply-add as 2 FLOPs


def clips_per_second(
    model: nn.Module, clip_shape: tuple[int, ...], batch_size: int, batches: int, device: torch.device
) -> float:
    """Inference throughput: random clips (batch_size, *clip_shape), one warm-up batch, then the median
    of `batches` timed batches (the median, because CPU runs share cores with whatever else runs)."""
    import statistics

    import torch

    model = model.to(device).eval()
    clips = torch.randn(batch_size, *clip_shape, device=device)
    seconds = []
    with torch.no_grad():
        model(clips)  # warm-up: allocator, kernel selection
        for _ in range(max(batches, 1)):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model(clips)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - start)
    return batch_size / statistics.median(seconds)


def compare(cfg: CompareConfig) -> list[dict]:
    """Trains + evaluates every entry of `cfg.models`; returns the table rows (also written to OUT)."""
    from .checkpoint import IN_CHANNELS, load_trained
    from .distributed import setup_distributed
    from .evaluate import evaluate_checkpoint
    from .models.utils import count_parameters
    from .plots import plot_comparison
    from .train import train

    entries = parse_entries(cfg.models)
    out = Path(cfg.out)
    write_config(cfg, out)
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    eval_names = {f.name for f in dataclasses.fields(EvalConfig)}
    shared = {k: v for k, v in dataclasses.asdict(cfg).items() if k in train_names}
    rows = []
    for name, mode in entries:
        label = name if mode is None else f"{name}:{mode}"
        run_dir = out / label.replace(":", "-")
        run_mode = mode or cfg.mode
        train_cfg = TrainConfig(
            **{
                **shared,
                "model": name,
                "mode": run_mode,
                "out": str(run_dir / "train"),
                "loss": cfg.loss if mode is None else "",
            }
        )
        train_metrics = train(train_cfg)
        checkpoint = run_dir / "train" / ("best.pt" if (run_dir / "train" / "best.pt").is_file() else "last.pt")
        eval_cfg = EvalConfig(
            **{k: v for k, v in dataclasses.asdict(cfg).items() if k in eval_names and k != "out"},
            checkpoint=str(checkpoint),
            out=str(run_dir / "eval"),
            partitions=cfg.eval_partitions,
            split_name=cfg.eval_split_name,
        )
        results = evaluate_checkpoint(eval_cfg)

        device, _, _ = setup_distributed(cfg.device)
        model, _, ckpt = load_trained(str(checkpoint), device)
        in_channels = IN_CHANNELS[train_cfg.modality]
        rows.append(
            {
                "model": label,
                "mode": run_mode,
                "params": count_parameters(model),
                "gflops": clip_gflops(name, ckpt["num_classes"], in_channels, cfg.frames, cfg.crop_size),
                "clips_per_second": clips_per_second(
                    model,
                    (in_channels, cfg.frames, cfg.crop_size, cfg.crop_size),
                    cfg.batch_size,
                    cfg.speed_batches,
                    device,
                ),
                "train_clips_per_second": train_metrics.get("clips_per_second", float("nan")),
                "clip_top1": results["clip_top1"],
                "video_top1": results["video_top1"],
                "video_top5": results["video_top5"],
                "num_videos": results["num_videos"],
            }
        )
    (out / "compare.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "compare.md").write_text(markdown_table(rows, cfg))
    plot_comparison(rows, out / "compare.png")
    return rows


def markdown_table(rows: list[dict], cfg: CompareConfig) -> str:
    header = (
        f"Same shards, {cfg.frames} frames x {cfg.crop_size}px, {cfg.epochs} epochs, "
        f"test {cfg.test_clips} clips x {cfg.test_crops} crops; GFLOPs = multiply-accumulates per clip; "
        f"clips/s = inference on {cfg.device}, batch {cfg.batch_size}.\n\n"
    )
    lines = [
        "| model | mode | params | GFLOPs | clips/s | clip top-1 | video top-1 | video top-5 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['mode']} | {r['params']:,} | {r['gflops']:.3g} | {r['clips_per_second']:.1f} "
            f"| {100 * r['clip_top1']:.1f} | {100 * r['video_top1']:.1f} | {100 * r['video_top5']:.1f} |"
        )
    return header + "\n".join(lines) + "\n"
