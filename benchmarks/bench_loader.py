"""Loader throughput (clips/s per core, streaming from shards) and training step rate, side by side.

    python benchmarks/bench_loader.py --repeats 5 --out benchmarks/results/loader_cpu.md
    python benchmarks/bench_loader.py --no-real                       # synthetic shards only (quick)
    python benchmarks/bench_loader.py --shards DIR --partition train  # a `flowprep extract` output

Two workloads by default: synthetic 256x256 shards (48-frame videos of smooth random textures, q95) and
the real clips of ../shared/data/videos extracted in full by `flowprep extract` with its defaults (the
videos a user streams: 32 to 795 frames, flow JPEGs of ~3.5 KB where the synthetic ones are ~23 KB).
Rows are measured in one run on the same shards, interleaved and repeated (`--repeats`, median kept),
so their ratios are comparable on a machine shared with other jobs: the loader as it was before issue 23
(`tarfile` members, whole frames decoded, float32 clips normalised in the worker: `legacy_loader`) against
today's (the C tar scanner, only the crop box decoded, uint8 clips normalised on the device) and
today's without the box-only decode (`whole_frame_decode`), per modality, with K clips per video read, and
the reduced DCT decode on multi-scale crops; then DataLoader workers. The step rate row says how many
clips/s one training step of a model consumes on this device: the loader keeps it busy when its
clips/s (all workers) exceed that.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def write_synthetic_shards(folder: Path, videos: int, frames: int, size: int, per_shard: int = 4) -> None:
    """Shards with smooth random textures (JPEG sizes like real frames, not flat images)."""
    import cv2
    import webdataset as wds

    from flowprep.format import FLOW_X, FLOW_Y, RGB, frame_member, make_key, shard_name

    rng = np.random.default_rng(0)
    names = []

    def jpeg(img):
        return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()

    def texture(channels):
        small = rng.integers(0, 256, (size // 8, size // 8, channels), dtype=np.uint8)
        return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).reshape(size, size, channels)

    for s in range(0, videos, per_shard):
        names.append(shard_name("train", s // per_shard, 0))
        with wds.TarWriter(str(folder / names[-1])) as w:
            for v in range(s, min(s + per_shard, videos)):
                key = make_key("c", f"v{v}")
                meta = {
                    "format_version": 1,
                    "key": key,
                    "label": v % 4,
                    "splits": {"1": "train"},
                    "num_frames": frames,
                    "num_flows": frames - 1,
                    "height": size,
                    "width": size,
                }
                sample = {"__key__": key, "json": __import__("json").dumps(meta).encode(), "cls": b"0"}
                rgb, fx, fy = texture(3), texture(1), texture(1)
                for i in range(frames):  # shifted copies: distinct bytes per frame, same statistics
                    sample[frame_member(RGB, i)] = jpeg(np.roll(rgb, i, axis=1))
                    if i < frames - 1:
                        sample[frame_member(FLOW_X, i)] = jpeg(np.roll(fx, i, axis=0))
                        sample[frame_member(FLOW_Y, i)] = jpeg(np.roll(fy, i, axis=0))
                w.write(sample)
    (folder / "train.shards.txt").write_text("".join(n + "\n" for n in names))


REAL_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


def extract_real_clips(out: Path) -> None:
    """Every real clip, full length, through `flowprep extract` with its defaults (one `folder` dataset)."""
    import subprocess
    import sys

    root = out.parent / "real_root" / "real"
    root.mkdir(parents=True)
    for clip in sorted(REAL_VIDEOS.iterdir()):
        (root / clip.name).symlink_to(clip)
    cmd = [sys.executable, "-m", "flowprep.cli", "extract", "--dataset", "folder", "--root", str(root.parent)]
    subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True)


def real_urls(out: Path) -> list[str]:
    from training.data import shard_urls

    return shard_urls(str(out), ["all"])


def clips_per_second(iterable, warmup: int = 2, clock=time.perf_counter) -> tuple[float, int]:
    """Clips per second of `clock`: wall time, or this process's CPU time (time.process_time), which
    other jobs on a shared machine do not inflate: clips per CPU-second is clips/s per core."""
    it = iter(iterable)
    for _ in range(warmup):
        next(it)
    t0, n = clock(), 0
    for item in it:
        n += len(item["label"]) if hasattr(item["label"], "__len__") else 1
    return n / (clock() - t0), n


def full_decode(urls) -> list[dict]:
    """Baseline: decode every JPEG of every video (what `.decode()` on the whole sample does)."""
    from training.data import decode_jpeg, videos

    for sample in videos(({"url": u, "stream": open(u, "rb")} for u in urls), print):
        for k, v in sample.items():
            if k.endswith(".jpg"):
                decode_jpeg(v, gray=not k.startswith("rgb"))
        yield {"label": 0}


@contextlib.contextmanager
def legacy_loader():
    """The loader before issue 23, in this process: webdataset's tarfile-based member reader (then grouped as
    webdataset groups, which the old loader's own grouping equalled), and float32
    clips normalised on the CPU (what rgb_clip / flow_clip returned). Decode and crops are unchanged."""
    from webdataset.tariterators import group_by_keys, tar_file_expander

    import training.data as data
    from training.normalize import normalize_clip

    def tarfile_samples(shards, on_error):
        return group_by_keys(tar_file_expander(shards, handler=lambda exn: on_error(exn) or True))

    make_clips = data.make_clips

    def float_clips(picked, spec):
        import torch

        items = make_clips(picked, spec)
        for item in items:
            for key in ("rgb", "flow", "rgb2"):
                if key in item:
                    with torch.no_grad():
                        item[key] = np.ascontiguousarray(normalize_clip(torch.from_numpy(item[key]), key).numpy())
        return items

    saved = data.tar_samples, data.make_clips
    data.tar_samples, data.make_clips = tarfile_samples, float_clips
    try:
        yield
    finally:
        data.tar_samples, data.make_clips = saved


@contextlib.contextmanager
def whole_frame_decode():
    """Today's loader without the partial-decode helper (training.jpeg_native): OpenCV decodes whole frames."""
    from training import jpeg_native

    saved = os.environ.get("FLOWPREP_NATIVE_JPEG")
    os.environ["FLOWPREP_NATIVE_JPEG"] = "0"
    jpeg_native.crop_decoder.cache_clear()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["FLOWPREP_NATIVE_JPEG"]
        else:
            os.environ["FLOWPREP_NATIVE_JPEG"] = saved
        jpeg_native.crop_decoder.cache_clear()


def step_rate(model_name: str, batch: int, frames: int, crop: int, in_channels: int, steps: int) -> float:
    """clips/s of SGD steps (forward + backward) on random input, after one warm-up step."""
    import torch

    from training.models import create_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = create_model(model_name, num_classes=51, in_channels=in_channels).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, in_channels, frames, crop, crop, device=device)
    y = torch.randint(0, 51, (batch,), device=device)
    for i in range(steps + 1):
        if i == 1:
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def loader_rows(workload: str, urls: list[str], repeats: int, epoch_samples: int = 64) -> list[tuple]:
    """(workload, what, modalities, processes, clips/s, ratio) rows of every in-process loader variant.

    Every row streams the same amount: fixed-length epochs of `epoch_samples` videos (long enough to
    amortise a start), shards drawn with replacement."""
    from training.data import ClipSpec, ShardClipDataset

    def in_process(modalities, crop="random", decode="cpu", k=1):
        spec = ClipSpec(modalities=modalities, frames=16, crop_size=112, crop=crop, decode=decode, clips_per_video=k)
        ds = ShardClipDataset(
            urls, spec, split_name=None, buffer_size=8, rank=0, world_size=1, epoch_samples=epoch_samples // k
        )
        return clips_per_second(ds.samples(0, 1, 0, 1), clock=time.process_time)[0]

    def legacy(modalities, crop="random"):
        with legacy_loader(), whole_frame_decode():
            return in_process(modalities, crop)

    def whole_frames(modalities):
        with whole_frame_decode():
            return in_process(modalities)

    both = ("rgb", "flow")
    variants = {  # name -> (modalities, label, baseline name, measure)
        "all": (
            both,
            "decode every JPEG of a video (no clip selection)",
            None,
            lambda: clips_per_second(full_decode(urls), warmup=1, clock=time.process_time)[0],
        )
    }
    for mods in (("rgb",), ("flow",), both):
        m = "+".join(mods)
        variants[f"legacy {m}"] = (
            mods,
            "before: tarfile, whole frames, float32 clips",
            None,
            lambda mods=mods: legacy(mods),
        )
        variants[f"whole {m}"] = (
            mods,
            "now, but whole frames decoded (no C helper)",
            f"legacy {m}",
            lambda mods=mods: whole_frames(mods),
        )
        variants[f"new {m}"] = (
            mods,
            "now: tar scanner + uint8 + box-only decode",
            f"legacy {m}",
            lambda mods=mods: in_process(mods),
        )
    variants["new k4"] = (both, "now, --clips-per-video 4", "legacy rgb+flow", lambda: in_process(both, k=4))
    variants["legacy ms"] = (
        both,
        "before, multiscale_corner crops",
        None,
        lambda: legacy(both, "multiscale_corner"),
    )
    variants["new ms"] = (
        both,
        "now, multiscale_corner crops",
        "legacy ms",
        lambda: in_process(both, "multiscale_corner"),
    )
    variants["new ms reduced"] = (
        both,
        "now, multiscale_corner, --decode cpu_reduced",
        "legacy ms",
        lambda: in_process(both, "multiscale_corner", "cpu_reduced"),
    )
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):  # interleaved: every row sees the same spells of load from other jobs
        for name, (_, _, _, measure) in variants.items():
            rates[name].append(measure())
    rows = []
    for name, (mods, label, base_name, _) in variants.items():
        rate = statistics.median(rates[name])
        ratio = f"{rate / statistics.median(rates[base_name]):.2f}x" if base_name else ""
        rows.append((workload, label, "+".join(mods), 1, rate, ratio))
    return rows


def main() -> None:
    import torch

    from training.data import ClipSpec, ShardClipDataset, make_loader, shard_urls

    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", help="flowprep output folder (default: synthetic shards, then the real clips)")
    ap.add_argument("--partition", default="train", help="--shards partition to stream")
    ap.add_argument(
        "--real", action=argparse.BooleanOptionalAction, default=True, help="also extract and stream the real clips"
    )
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--frames", type=int, default=48, help="frames per synthetic video")
    ap.add_argument("--size", type=int, default=256, help="side of synthetic frames, px")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats per row (median kept)")
    ap.add_argument("--models", default="resnet3d_tiny,resnet3d_18")
    ap.add_argument("--out", help="write the markdown table here")
    args = ap.parse_args()
    torch.set_num_threads(1)  # per-core figures: one thread for the legacy rows' float conversion too
    import cv2

    cv2.setNumThreads(1)  # as in a DataLoader worker (training.data._worker_init)

    with tempfile.TemporaryDirectory() as tmp:
        workloads = []  # (label, urls)
        if args.shards:
            workloads.append((f"shards {args.shards}", shard_urls(args.shards, [args.partition])))
        else:
            synthetic = Path(tmp) / "synthetic"
            synthetic.mkdir()
            write_synthetic_shards(synthetic, args.videos, args.frames, args.size)
            workloads.append(
                (f"synthetic ({args.videos} videos x {args.frames} frames)", shard_urls(str(synthetic), ["train"]))
            )
            if args.real and REAL_VIDEOS.is_dir():
                real = Path(tmp) / "real"
                extract_real_clips(real)
                workloads.append((f"real ({len(list(REAL_VIDEOS.iterdir()))} clips, full length)", real_urls(real)))
            elif args.real:
                print(f"no {REAL_VIDEOS}: the real-clip rows are skipped")
        rows = []
        for workload, urls in workloads:
            rows += loader_rows(workload, urls, args.repeats)
        for workload, urls in workloads:
            for workers in sorted({1, args.workers}):
                spec = ClipSpec(modalities=("rgb", "flow"), frames=16, crop_size=112)
                ds = ShardClipDataset(
                    urls, spec, split_name=None, buffer_size=8, rank=0, world_size=1, epoch_samples=64
                )
                loader = make_loader(ds, batch_size=4, num_workers=workers)
                for epoch in range(2):  # persistent workers: the second epoch has no worker start
                    ds.set_epoch(epoch)
                    rate, _ = clips_per_second(loader, warmup=1)
                what = f"now: DataLoader, {workers} persistent worker(s), batch 4, 2nd epoch (total)"
                rows.append((workload, what, "rgb+flow", workers, rate, ""))
        steps = []
        for name in args.models.split(","):
            steps.append((name, step_rate(name, batch=8, frames=16, crop=112, in_channels=3, steps=2)))

    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU ({platform.processor() or platform.machine()})"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")  # other jobs on the cores
    lines = [
        f"Device: {device}; torch threads {torch.get_num_threads()}; load average {load:.1f} at the end; "
        f"synthetic shards: {args.size}x{args.size} q95 JPEGs of smooth random textures (flow JPEGs ~6x the "
        "bytes of real ones); real: every clip of ../shared/data/videos through `flowprep extract` (default "
        "settings, full length).",
        f"Medians of {args.repeats} interleaved repeats. In-process rows are clips per CPU-second of the "
        "process (time.process_time: what one core delivers, not inflated by other jobs); DataLoader rows "
        "are wall-clock. Compare ratios within this table (on a shared machine only they are meaningful).",
        "",
        "| shards | loader | modalities | processes | clips/s | clips/s per core | vs before (same clips) |",
        "|---|---|---|---|---|---|---|",
    ]
    for workload, what, mods, workers, rate, ratio in rows:
        lines.append(f"| {workload} | {what} | {mods} | {workers} | {rate:.1f} | {rate / workers:.1f} | {ratio} |")
    lines += ["", "| training step (batch 8, 3x16x112x112, fwd+bwd, SGD) | clips/s |", "|---|---|"]
    lines += [f"| {name} | {rate:.1f} |" for name, rate in steps]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            "# Loader and step-rate benchmark\n\nCommand: `python benchmarks/bench_loader.py "
            f"--repeats {args.repeats} --out {args.out}`\n\n" + table
        )


if __name__ == "__main__":
    main()
