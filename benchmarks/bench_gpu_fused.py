"""Fused Triton TV-L1 (`triton-cuda`) vs today's torch-cuda, eager and torch.compile'd, on one GPU.

    python benchmarks/prepare_gpu_inputs.py           # here, with OpenCV contrib: bench_out/gpu_inputs
    bash benchmarks/run_gpu.sh                         # on the GPU node (carry bench_out/gpu_inputs)
    python benchmarks/bench_gpu_fused.py --out DIR     # what run_gpu.sh runs
    TRITON_INTERPRET=1 python benchmarks/bench_gpu_fused.py --allow-cpu --inputs bench_out/gpu_inputs_32 \\
        --batches 1,2 --compile-batches "" --min-seconds 0 --flow-param nscales=2 --flow-param warps=1 \\
        --flow-param outer_iterations=2 --flow-param inner_iterations=3     # CPU smoke run of the script

Needs only torch, numpy and this repository (no PyAV, Ray or OpenCV): the frames and OpenCV's CPU flow
on them come from `prepare_gpu_inputs.py` as .npy. All rows use the same TVL1Solver (pyramid, cubic
warps, per-pair stopping test at OpenCV's default parameters) and differ only in the inner iteration
and the median filter:
  triton     TritonKernels: 2 fused kernels per iteration, 1 per median, 1 per warp (triton_tvl1.py)
  eager      tvl1_step / median_blur as plain torch ops (~40 kernels per iteration)
  compiled   the same through torch.compile (what the torch-cuda backend runs by default)
For each row and batch size: pairs/s (upload of uint8 frames, solve, download of float32 flow, timed
over >= --min-seconds of batches after one warm-up batch), the warm-up seconds (compilation), peak GPU
memory per pair (torch.cuda.max_memory_allocated / batch) and the memory traffic the inner iterations
imply (pixel-steps x bytes per pixel-step, a lower bound on what was moved). Batches larger than the
prepared set repeat its pairs. Fidelity: every prepared pair in one batch, mean EPE vs OpenCV per pair
(worst and mean), % of quantized pixels (format.quantize_flow) within one level (worst), EPE to ground
truth where known, and whether pair 0 alone gives bit-for-bit its flow in the batch.
Rows stop being started once --budget-s is spent (a compiled row is not started with less than
--compile-reserve-s left), so one run stays within the node's 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # flowprep from this checkout, not installed on the node

BYTES_PER_PIXEL_STEP = {"triton": 88, "eager": None, "compiled": None}  # 22 float32 planes (triton_tvl1)


def load_inputs(folder: Path):
    """(prev_u8, next_u8 (N,H,W) uint8, flow_opencv (N,H,W,2) float32 px, flow_gt (G,H,W,2) of the
    pairs meta["gt_pairs"], NaN where unknown, meta)."""
    meta = json.loads((folder / "pairs.json").read_text())
    arrays = [np.load(folder / f) for f in ("prev_u8.npy", "next_u8.npy", "flow_opencv.npy", "flow_gt.npy")]
    return (*arrays, meta)


PARAMS: dict = {}  # TV-L1 parameters: OpenCV's defaults (the reference's), --flow-param overrides (smoke runs)


def make_solver(variant: str, device: str):
    from flowprep.flow.torch_tvl1 import TVL1Solver

    sync_every = 10 if device.startswith("cuda") else 1
    if variant == "triton":
        from flowprep.flow.triton_tvl1 import TritonKernels

        return TVL1Solver(dict(PARAMS), sync_every=sync_every, kernels=TritonKernels())
    return TVL1Solver(dict(PARAMS), compiled=variant == "compiled", sync_every=sync_every)


def solve(solver, prev_u8: np.ndarray, next_u8: np.ndarray, device: str) -> np.ndarray:
    """uint8 (B,H,W) x2 -> float32 (B,H,W,2) px, host to host, as a backend's compute() does."""
    import torch

    with torch.inference_mode():
        I0 = torch.from_numpy(prev_u8).to(device).float()
        I1 = torch.from_numpy(next_u8).to(device).float()
        u1, u2 = solver(I0, I1)
        return torch.stack([u1, u2], dim=-1).cpu().numpy()


def time_row(variant: str, batch: int, prev, nxt, device: str, min_seconds: float, max_batches: int) -> dict:
    import torch

    on_cuda = device.startswith("cuda")
    solver = make_solver(variant, device)
    idx = np.arange(batch) % len(prev)
    a, b = np.ascontiguousarray(prev[idx]), np.ascontiguousarray(nxt[idx])
    t0 = time.perf_counter()
    solve(solver, a, b, device)  # warm-up: Triton / inductor compile here
    warmup_s = time.perf_counter() - t0
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    seconds, batches, pixel_steps = 0.0, 0, 0
    while batches < max_batches and (batches == 0 or seconds < min_seconds):
        t0 = time.perf_counter()
        solve(solver, a, b, device)  # ends with a device -> host copy: synchronized
        seconds += time.perf_counter() - t0
        batches += 1
        pixel_steps += solver.pixel_steps
    row = {
        "variant": variant,
        "batch": batch,
        "pairs_s": batches * batch / seconds,
        "warmup_s": warmup_s,
        "batches_timed": batches,
        "pixel_steps_per_pair": pixel_steps / batches / batch,
        "iterations_per_batch": solver.iterations_run,
    }
    if on_cuda:
        row["mem_mib_per_pair"] = torch.cuda.max_memory_allocated() / batch / 2**20
    if BYTES_PER_PIXEL_STEP[variant]:
        row["inner_gb_s"] = row["pairs_s"] * row["pixel_steps_per_pair"] * BYTES_PER_PIXEL_STEP[variant] / 1e9
    return row


def fidelity(variant: str, prev, nxt, flow_cv, flow_gt, gt_pairs: list[int], device: str) -> dict:
    """All prepared pairs in one batch vs OpenCV, and pair 0 alone vs in the batch."""
    from flowprep import format as fmt

    solver = make_solver(variant, device)
    ours = solve(solver, prev, nxt, device)
    alone = solve(solver, prev[:1], nxt[:1], device)[0]
    epe = np.linalg.norm(ours - flow_cv, axis=-1).mean(axis=(1, 2))
    q_ours, q_cv = fmt.quantize_flow(ours).astype(np.int16), fmt.quantize_flow(flow_cv).astype(np.int16)
    within = (np.abs(q_ours - q_cv) <= 1).all(axis=-1).mean(axis=(1, 2))
    gt_rows = []
    for g, i in enumerate(gt_pairs):
        known = np.isfinite(flow_gt[g]).all(axis=-1)
        gt_rows.append(
            {
                "pair": i,
                "epe_gt_ours": float(np.linalg.norm(ours[i] - flow_gt[g], axis=-1)[known].mean()),
                "epe_gt_opencv": float(np.linalg.norm(flow_cv[i] - flow_gt[g], axis=-1)[known].mean()),
            }
        )
    return {
        "variant": variant,
        "epe_vs_opencv_per_pair": epe.tolist(),
        "epe_worst": float(epe.max()),
        "epe_mean": float(epe.mean()),
        "within_one_level_per_pair": within.tolist(),
        "within_one_level_worst": float(within.min()),
        "gt": gt_rows,
        "alone_equals_batch": bool(np.array_equal(alone, ours[0])),
    }


def step_share(prev, nxt, device: str, batch: int) -> dict:
    """How much of a triton solve is the fused inner iteration: time fused steps on the finest level
    alone, scale by the pixel-steps a solve runs; the rest is warps, medians, pyramid and the loop."""
    import torch

    from flowprep.flow.triton_tvl1 import TritonKernels

    kernels = TritonKernels()
    h, w = prev.shape[1:]
    g = torch.Generator(device=device).manual_seed(0)
    planes = [torch.randn((batch, h, w), device=device, generator=g) for _ in range(10)]
    planes[8] = planes[6] ** 2 + planes[7] ** 2  # grad = I1wx^2 + I1wy^2
    steps = 50
    for _ in range(3):
        kernels.step(*planes, None, 0.045, 0.3, 0.25 / 0.3)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        kernels.step(*planes, None, 0.045, 0.3, 0.25 / 0.3)
    torch.cuda.synchronize()
    s_per_pixel_step = (time.perf_counter() - t0) / steps / (batch * h * w)
    return {
        "batch": batch,
        "step_ns_per_pixel": s_per_pixel_step * 1e9,
        "step_gb_s": BYTES_PER_PIXEL_STEP["triton"] / s_per_pixel_step / 1e9,
    }


def markdown(results: dict) -> str:
    env = results["env"]
    lines = [
        f"# Fused Triton TV-L1 vs torch-cuda at {env['size']}x{env['size']}",
        "",
        f"`{env['command']}`",
        "",
        f"{env['device']}; torch {env['torch']}, triton {env['triton']}; {env['pairs']} prepared pairs "
        f"(OpenCV {env['opencv']} reference flows, default parameters); {env['when']}."
        + (
            f" TV-L1 parameters overridden: {env['param_overrides']} (a smoke run: fidelity is not comparable)."
            if env["param_overrides"]
            else ""
        ),
        "",
        "| variant | batch | pairs/s | x eager, same batch | warm-up s | MiB per pair | inner-iteration GB/s |",
        "|---|---|---|---|---|---|---|",
    ]
    eager = {r["batch"]: r["pairs_s"] for r in results["rows"] if r.get("variant") == "eager" and "pairs_s" in r}
    for r in results["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['variant']} | {r['batch']} | skipped: {r['skipped']} | | | | |")
            continue
        ratio = f"{r['pairs_s'] / eager[r['batch']]:.2f}" if r["batch"] in eager else "-"
        mem = f"{r['mem_mib_per_pair']:.1f}" if "mem_mib_per_pair" in r else "-"
        bw = f"{r['inner_gb_s']:.0f}" if "inner_gb_s" in r else "-"
        lines.append(
            f"| {r['variant']} | {r['batch']} | {r['pairs_s']:.1f} | {ratio} | {r['warmup_s']:.1f} | {mem} | {bw} |"
        )
    lines += [
        "",
        "Fidelity (all prepared pairs in one batch) against OpenCV's CPU flow:",
        "",
        "| variant | mean EPE, worst pair (px) | mean EPE, all pairs | within one level, worst pair | pair alone == in batch |",
        "|---|---|---|---|---|",
    ]
    for f in results["fidelity"]:
        lines.append(
            f"| {f['variant']} | {f['epe_worst']:.4f} | {f['epe_mean']:.4f} | "
            f"{f['within_one_level_worst']:.2%} | {f['alone_equals_batch']} |"
        )
    for f in results["fidelity"]:
        for g in f["gt"]:
            lines.append(
                f"- {f['variant']}, {results['env']['names'][g['pair']]}: EPE to ground truth "
                f"{g['epe_gt_ours']:.4f} px (OpenCV {g['epe_gt_opencv']:.4f})"
            )
    if results.get("step"):
        s = results["step"]
        lines += [
            "",
            f"Fused inner iteration alone (batch {s['batch']}, finest level): "
            f"{s['step_ns_per_pixel']:.3f} ns per pixel-step, {s['step_gb_s']:.0f} GB/s at 88 B per pixel-step.",
        ]
        best = max(
            (r for r in results["rows"] if r.get("variant") == "triton" and "pairs_s" in r),
            key=lambda r: r["pairs_s"],
            default=None,
        )
        if best:
            share = best["pairs_s"] * best["pixel_steps_per_pair"] * s["step_ns_per_pixel"] * 1e-9
            lines.append(
                f"At batch {best['batch']} the inner iterations are about {share:.0%} of the solve "
                "(the rest: cubic warps, medians, pyramid, host loop)."
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--inputs", default=str(ROOT / "bench_out" / "gpu_inputs"), help="prepare_gpu_inputs.py's folder"
    )
    parser.add_argument(
        "--out",
        default=os.environ.get("OUT") or str(ROOT / "bench_out" / "gpu_results"),
        help="folder for gpu_fused.md / gpu_fused.json (default $OUT)",
    )
    parser.add_argument("--batches", default="1,8,32,64,128,256", help="batch sizes of the triton and eager rows")
    parser.add_argument("--compile-batches", default="64,256", help="batch sizes of the compiled rows ('' for none)")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="time each row over at least this long")
    parser.add_argument("--max-batches", type=int, default=50)
    parser.add_argument("--budget-s", type=float, default=380.0, help="start no row after this many seconds")
    parser.add_argument(
        "--compile-reserve-s",
        type=float,
        default=150.0,
        help="start a compiled row only with this much budget left (its warm-up compiles)",
    )
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU (triton needs TRITON_INTERPRET=1)")
    parser.add_argument(
        "--flow-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a TV-L1 parameter (smoke runs only: the reference flows use the defaults)",
    )
    args = parser.parse_args(argv)
    from flowprep.flow.opencv_tvl1 import OPENCV_TVL1_DEFAULTS, merge_params

    overrides = {
        k: type(OPENCV_TVL1_DEFAULTS[k])(float(v)) if k in OPENCV_TVL1_DEFAULTS else v
        for k, v in (kv.split("=", 1) for kv in args.flow_param)
    }
    PARAMS.update(merge_params(OPENCV_TVL1_DEFAULTS, overrides))
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    on_cuda = torch.cuda.is_available()
    if not on_cuda and not args.allow_cpu:
        message = f"no CUDA device: torch {torch.__version__} sees none; nothing measured (--allow-cpu for a smoke run)"
        print(message)
        (out / "gpu_fused.md").write_text(f"# Fused Triton TV-L1 benchmark\n\n{message}\n")
        return 0
    device = "cuda" if on_cuda else "cpu"
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None

    prev, nxt, flow_cv, flow_gt, meta = load_inputs(Path(args.inputs))
    variants = (["triton"] if triton_version else []) + ["eager"]
    env = {
        "command": "python benchmarks/bench_gpu_fused.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": torch.cuda.get_device_name(0) if on_cuda else f"CPU ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "triton": triton_version,
        "opencv": meta["opencv"],
        "size": meta["size"],
        "pairs": len(prev),
        "names": meta["names"],
        "param_overrides": overrides,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    results = {"env": env, "rows": [], "fidelity": [], "step": None}

    def save():
        (out / "gpu_fused.json").write_text(json.dumps(results, indent=1))
        (out / "gpu_fused.md").write_text(markdown(results))

    def left() -> float:
        return args.budget_s - (time.perf_counter() - t_start)

    # fidelity first (cheap, and the point of the exercise), then speed, then the compiled rows
    failed = {}  # variant -> error: a kernel that does not compile must not cost the other rows
    for variant in variants:
        try:
            results["fidelity"].append(fidelity(variant, prev, nxt, flow_cv, flow_gt, meta["gt_pairs"], device))
        except Exception as exc:
            failed[variant] = f"{type(exc).__name__}: {str(exc)[-300:]}"
            results.setdefault("errors", {})[variant] = traceback.format_exc()[-4000:]
            print(f"{variant} failed: {failed[variant]}", flush=True)
            continue
        print(json.dumps({k: v for k, v in results["fidelity"][-1].items() if "per_pair" not in k}), flush=True)
        save()
    plan = [(v, int(b)) for v in variants for b in args.batches.split(",") if b]
    plan += [("compiled", int(b)) for b in args.compile_batches.split(",") if b]
    for variant, batch in plan:
        reserve = args.compile_reserve_s if variant == "compiled" else 0.0
        if variant in failed or left() < reserve:
            results["rows"].append(
                {"variant": variant, "batch": batch, "skipped": failed.get(variant, "time budget")[:120]}
            )
            continue
        try:
            row = time_row(variant, batch, prev, nxt, device, args.min_seconds, args.max_batches)
        except Exception as exc:  # out of memory at a large batch, a compile failure: record, go on
            row = {"variant": variant, "batch": batch, "skipped": f"{type(exc).__name__}: {str(exc)[:100]}"}
            results.setdefault("errors", {})[f"{variant}@{batch}"] = traceback.format_exc()[-4000:]
            if on_cuda:
                torch.cuda.empty_cache()
        results["rows"].append(row)
        print(json.dumps(row), flush=True)
        save()
    if on_cuda and triton_version and "triton" not in failed and left() > 0:
        results["step"] = step_share(prev, nxt, device, batch=128)
    save()
    print(markdown(results))
    print(f"written: {out / 'gpu_fused.md'}, {out / 'gpu_fused.json'} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
