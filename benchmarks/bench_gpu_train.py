"""The GPU's appetite against the loader's supply: steps/s of the teacher and the distilled student on
synthetic input vs loader-fed input (CPU decode with N workers, GPU decode), GPU memory and busy share.

    here:      python benchmarks/bench_gpu_train.py --write-shards bench_out/gpu_train_shards   (~50 MB)
    GPU node:  bash benchmarks/run_gpu_train.sh            (carry bench_out/gpu_train_shards)
    CI / CPU:  python benchmarks/bench_gpu_train.py --dry  (tiny model, tiny shards, a few steps)

Needs torch and numpy only on the GPU node: rows whose decoder is missing (OpenCV for CPU decode,
torchvision for GPU decode) are reported as skipped with the reason. "Busy" is a row's steps/s over the
synthetic row's (the share of the time the GPU would be computing if the loader were the only stall); the
last line names the fewest CPU workers that keep it >= 95%.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def write_shards(folder: Path, videos: int, frames: int, size: int) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_loader import write_synthetic_shards

    folder.mkdir(parents=True, exist_ok=True)
    write_synthetic_shards(folder, videos, frames, size)


def step_runner(mode: str, model_name: str, num_classes: int, device, precision: str):
    """(step(batch) -> None, model): one optimizer step of the recipe `mode` (teacher | student)."""
    import torch

    from training.checkpoint import build_model
    from training.loops import Features, StepContext
    from training.losses import create_loss
    from training.models.utils import freeze
    from training.recipes import get_recipe

    recipe = get_recipe(mode)
    model = build_model(model_name, num_classes, 2 if recipe.modality == "flow" else 3).to(device)
    teacher = None
    if recipe.needs_teacher:
        teacher = build_model(model_name, num_classes, 2).to(device).eval()
        freeze(teacher)
    ctx = StepContext(Features(model), create_loss(recipe.default_loss), recipe.modality, device, precision, teacher)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(batch: dict) -> None:
        target = batch["label"].to(device, non_blocking=True)
        _, terms = recipe.step(ctx, batch, target)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()

    return step, recipe


def timed(step, batches, warmup: int, steps: int, device) -> float:
    """steps/s of `step` over `batches` (an iterator), after `warmup` steps."""
    import torch

    it = iter(batches)
    for _ in range(warmup):
        step(next(it))
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(next(it))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def synthetic(reads: tuple[str, ...], batch: int, frames: int, crop: int, device):
    """The same uint8 clips forever, already on the device (what an infinitely fast loader would give)."""
    import torch

    clip = {"label": torch.zeros(batch, dtype=torch.long, device=device)}
    for m in reads:
        clip[m] = torch.randint(
            0, 256, (batch, 3 if m == "rgb" else 2, frames, crop, crop), dtype=torch.uint8, device=device
        )
    while True:
        yield clip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", help="flowprep-format shards (default: tiny synthetic ones, --dry)")
    ap.add_argument("--write-shards", help="write synthetic 256x256 shards here and stop (run where OpenCV is)")
    ap.add_argument("--dry", action="store_true", help="CPU, resnet3d_tiny, a few steps: checks the script runs")
    ap.add_argument("--model", default="resnext3d_101")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", default="4,8,16", help="CPU-decode worker counts to try")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default="benchmarks/results/gpu_train.md")
    args = ap.parse_args(argv)
    if args.write_shards:
        write_shards(Path(args.write_shards), videos=20, frames=32, size=256)
        return {}

    import torch

    from training.data import ClipSpec, ShardClipDataset, make_loader, shard_urls

    device = torch.device("cuda" if torch.cuda.is_available() and not args.dry else "cpu")
    model, batch, frames, crop, steps, warmup = args.model, args.batch, 16, 112, args.steps, 3
    workers = [int(w) for w in args.workers.split(",")]
    if args.dry:
        model, batch, frames, crop, steps, warmup, workers = "resnet3d_tiny", 2, 4, 16, 1, 1, [0]
    precision = "bf16" if device.type == "cuda" else "fp32"
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.shards
        if not folder:
            write_shards(Path(tmp), videos=4, frames=frames + 2, size=32)
            folder = tmp
        urls = shard_urls(folder, ["train"])
        for mode in ("teacher", "student"):
            step, recipe = step_runner(mode, model, 51, device, precision)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            base = timed(step, synthetic(recipe.reads, batch, frames, crop, device), warmup, steps, device)
            memory = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
            rows.append(
                {
                    "mode": mode,
                    "input": "synthetic (on device)",
                    "workers": 0,
                    "steps_s": base,
                    "busy": 1.0,
                    "gib": memory,
                }
            )
            feeds = [("cpu", w) for w in workers] + [("gpu", workers[0])]
            for decode, n in feeds:
                spec = ClipSpec(modalities=recipe.reads, frames=frames, crop_size=crop, decode=decode)
                ds = ShardClipDataset(
                    urls, spec, split_name=None, buffer_size=4, rank=0, world_size=1, epoch_samples=10**6
                )
                label = f"loader, {decode} decode"
                try:
                    loader = make_loader(ds, batch, n, pin_memory=device.type == "cuda", drop_last=True)
                    rate = timed(step, loader, warmup, steps, device)
                except ImportError as exc:  # a decoder this node lacks: say so, go on
                    rows.append({"mode": mode, "input": label, "workers": n, "skipped": str(exc)})
                    continue
                rows.append({"mode": mode, "input": label, "workers": n, "steps_s": rate, "busy": rate / base})
            del step
    device_name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (dry run)"
    lines = [
        f"Device: {device_name}; torch {torch.__version__}; {model}, batch {batch}, {frames}x{crop}x{crop}, "
        f"{precision}; {steps} timed steps per row.",
        "",
        "| recipe | input | workers | steps/s | clips/s | busy vs synthetic | peak GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['mode']} | {r['input']} | {r['workers']} | skipped: {r['skipped']} | | | |")
        else:
            lines.append(
                f"| {r['mode']} | {r['input']} | {r['workers']} | {r['steps_s']:.2f} | "
                f"{r['steps_s'] * batch:.1f} | {r['busy']:.0%} | {r.get('gib', 0) or ''} |"
            )
    for mode in ("teacher", "student"):
        enough = [
            r["workers"]
            for r in rows
            if r["mode"] == mode and r["input"] == "loader, cpu decode" and r.get("busy", 0) >= 0.95
        ]
        lines.append("")
        lines.append(
            f"{mode}: "
            + (
                f"{min(enough)} CPU-decode workers keep the GPU >= 95% busy"
                if enough
                else f"no tried CPU-decode worker count ({','.join(map(str, workers))}) keeps the GPU >= 95% busy"
            )
        )
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Training step rate: synthetic vs loader-fed\n\nCommand: `bash benchmarks/run_gpu_train.sh`\n\n" + table
    )
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return {"rows": rows}


if __name__ == "__main__":
    main()
