"""Run (or resume) an extraction job: plan it, run its jobs on an executor, merge what they published.

The parts, arrows pointing inward: `plan` (which tasks; `probe` reads the headers) -> `jobs` (what an
executor schedules) -> `task` (a task's body on a worker) and `split` (a long video's ranges and their
assembly) -> `core` (one video, pure). Executors: `run_inline` here, `executor_processes` (one machine),
`executor_ray` (a local Ray or a cluster); `progress` draws
the bar; `report` merges the manifest and writes report.json. A job killed at any point and started
again with the same command ends with every video exactly once: the plan is reused, a task whose
manifest part exists is done, and a split video's finished ranges are kept.
"""
from __future__ import annotations

import json
import logging
import os
import time

from . import format as fmt
from .config import ExtractConfig
from .datasets import KIND_FRAMES, Catalog, load_catalog
from .executor_ray import ray_address
from .manifest import done_parts
from .plan import estimate_work, make_tasks, read_plan, run_order, select, write_plan
from .progress import Progress
from .report import REPORT_FILE, merge_manifest, utilization
from .storage import filesystem, join, write_bytes_atomic
from .jobs import Job, JobQueue, jobs_to_run, run_job
from .split import PIECES_DIR, remove_pieces
from .task import worker_threads

log = logging.getLogger(__name__)


def fit_local_workers(cfg: ExtractConfig) -> ExtractConfig:
    """--workers 0 (the default) resolved to the cores here or the cluster's CPUs; and at most one worker
    per core when the job runs on this machine alone (no --ray-address / RAY_ADDRESS).

    TV-L1 is CPU-bound, so workers past the core count only compete; and a local Ray told of 64 CPUs
    would start up to 64 worker processes on a 2-core laptop. A cluster's own CPU count is Ray's to
    manage, so `--workers` is left as asked there."""
    import dataclasses

    cores = os.cpu_count() or 1
    if cfg.workers == 0:  # the default: use the machine, or the cluster (inline runs one job at a time)
        address = ray_address(cfg)
        workers = 1 if cfg.executor == "inline" else cores if address is None else cluster_cpus(address)
        return dataclasses.replace(cfg, workers=workers)
    if ray_address(cfg) is None and cfg.workers > cores:
        log.warning("--workers %d on a %d-core machine without a cluster: using %d", cfg.workers, cores, cores)
        return dataclasses.replace(cfg, workers=cores)
    return cfg


def cluster_cpus(address: str) -> int:
    """The CPUs of the Ray cluster at `address` (its workers' default count)."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, log_to_driver=False)
    try:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    finally:
        if started_here:
            ray.shutdown()


def run_inline(jobs: list[Job], cfg: ExtractConfig, progress) -> list[dict]:
    import cv2

    threads = cv2.getNumThreads()  # a job sets OpenCV's threads to its share: the caller's setting comes back
    queue, summaries = JobQueue(jobs), []
    try:
        while queue:
            job = queue.pop()
            summaries.append(run_job(job, cfg, on_video=progress.video_done))
            queue.finished(job)
    finally:
        cv2.setNumThreads(threads)
    return summaries


def run_extract(cfg: ExtractConfig, show_progress: bool = True) -> dict:
    """Run (or resume) the whole job; returns the summary also printed by the CLI."""
    started = time.time()
    cfg = fit_local_workers(cfg)
    if cfg.executor == "auto":  # Ray for a cluster (and flow actors); plain processes on one machine start faster
        import dataclasses
        use_ray = ray_address(cfg) is not None or cfg.flow_actors > 0
        cfg = dataclasses.replace(cfg, executor="ray" if use_ray else "processes")
    pool = None
    if cfg.executor == "processes":  # started first: the workers import while this process plans
        from .executor_processes import ProcessPool
        pool = ProcessPool(cfg.workers, cfg.flow_backend)
    try:
        return _run_extract(cfg, show_progress, started, pool)
    finally:
        if pool is not None:
            pool.close()


def _run_extract(cfg: ExtractConfig, show_progress: bool, started: float, pool) -> dict:
    from .flow import resolve

    backend = resolve(cfg.flow_backend, dict(cfg.flow_params), on_actors=cfg.flow_actors > 0)
    params_resolved = backend.params
    if backend.name != cfg.flow_backend:
        import dataclasses
        cfg = dataclasses.replace(cfg, flow_backend=backend.name)
    fs, out = filesystem(cfg.out)
    fs.makedirs(out, exist_ok=True)
    catalog = load_catalog(cfg.dataset, cfg.root, cfg.annotations)
    cfg = resolve_frame_fps(cfg, catalog)
    chosen, other_rows = select(catalog, cfg)
    tasks = read_plan(fs, out, cfg, chosen)
    if tasks is None:  # the first run of this job: cut it (by work, probing every video's header)
        fs_in, root = filesystem(cfg.root)
        work = estimate_work(fs_in, root, chosen, cfg, show_progress) if cfg.plan == "work" else (None, None)
        tasks = make_tasks(chosen, cfg, *work)
        write_plan(fs, out, cfg, tasks)
    resolved = {**cfg.to_dict(), "fingerprint": cfg.content_fingerprint(),
                "flow_params_resolved": params_resolved,
                "classes": list(catalog.classes)}
    write_bytes_atomic(fs, join(out, fmt.CONFIG_FILE), json.dumps(resolved, indent=2).encode())

    done = done_parts(fs, out)
    todo = [t for t in tasks if t.part_name not in done]
    jobs = jobs_to_run(run_order(todo), fs, out)
    log.info("%d tasks planned (%d split videos), %d already done, %d to run as %d jobs", len(tasks),
             sum(t.is_split for t in tasks), len(tasks) - len(todo), len(todo), len(jobs))
    progress = Progress(sum(len(t.items) for t in todo), disable=not show_progress)
    run_started = time.time()
    try:
        if cfg.executor == "inline":
            summaries = run_inline(jobs, cfg, progress)
        elif cfg.executor == "processes":
            from .executor_processes import run_processes
            summaries = run_processes(jobs, cfg, progress, pool)
        else:
            from .executor_ray import run_ray
            summaries = run_ray(jobs, cfg, progress)
    finally:
        progress.close()

    report = merge_manifest(fs, out, other_rows, [join(out, fmt.PARTS_DIR, t.part_name) for t in tasks])
    for partition, names in report.shards.items():
        write_bytes_atomic(fs, join(out, partition + fmt.SHARD_LIST_SUFFIX), ("\n".join(sorted(names)) + "\n").encode())
    slots = cfg.workers * (1 if cfg.executor == "inline" else worker_threads(cfg))
    summary = report.to_dict(time.time() - started, tasks=len(tasks), resumed_tasks=len(tasks) - len(todo),
                             retried_tasks=progress.retries, split_videos=sum(t.is_split for t in tasks),
                             jobs=len(summaries), startup_seconds=round(run_started - started, 3),
                             utilization=utilization(summaries, slots))
    remove_stale_pieces(fs, out, tasks)
    for name in (REPORT_FILE, "summary.json"):  # summary.json: the name earlier versions wrote
        write_bytes_atomic(fs, join(out, name), json.dumps(summary, indent=2).encode())
    return summary


def remove_stale_pieces(fs, out: str, tasks) -> None:
    """Pieces of split videos whose part is published (an assembly killed after publishing, before cleaning)."""
    done = done_parts(fs, out)
    for task in tasks:
        if task.is_split and task.part_name in done:
            remove_pieces(fs, out, task)
    if fs.exists(join(out, PIECES_DIR)) and not fs.ls(join(out, PIECES_DIR), detail=False):
        fs.rm(join(out, PIECES_DIR), recursive=True)


def resolve_frame_fps(cfg: ExtractConfig, catalog: Catalog) -> ExtractConfig:
    """--frame-fps, else the dataset's own rate; a frame-folder video with neither stops the job at once."""
    import dataclasses

    if cfg.frame_fps:
        return cfg
    if catalog.frame_fps:
        return dataclasses.replace(cfg, frame_fps=catalog.frame_fps)
    frames = next((item for item in catalog.items if item.kind == KIND_FRAMES and not item.problem), None)
    if frames is not None:
        raise ValueError(f"{frames.rel_path} is a folder of frames, which have no timestamps: pass --frame-fps "
                         f"(the rate they were extracted at)")
    return cfg

