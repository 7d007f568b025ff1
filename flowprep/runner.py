"""Run (or resume) an extraction job: plan it, run its jobs on an executor, merge what they published.

The parts, arrows pointing inward: `shard_job` (the skeleton every shard-writing job shares: plan or
reuse, config.json, to-do list, publish, finish) -> `plan` (which tasks; `probe` reads the headers)
-> `jobs` (what an executor schedules) -> `task` (a task's body on a worker) and `ranges` (a long
video's ranges and their assembly) -> `core` (one video, pure). Executors (`executors/`: inline,
processes, ray) run the jobs; `progress` draws the bar; `report` merges the manifest. A job killed at
any point and started again with the same command ends with every video exactly once: the plan is
reused, a task whose manifest part exists is done, and a ranged video's finished ranges are kept.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import cast

from .config import ExtractConfig
from .datasets import KIND_FRAMES, Catalog, load_catalog
from .executors import ray_address, resolve_executor, start
from .jobs import jobs_to_run
from .manifest import done_parts
from .plan import Task, estimate_work, make_tasks, run_order, select
from .progress import Progress
from .ranges import PIECES_DIR, remove_pieces
from .report import REPORT_FILE, utilization
from .shard_job import finish, open_job
from .storage import filesystem, join
from .task import worker_threads

log = logging.getLogger(__name__)


def fit_local_workers(cfg: ExtractConfig) -> ExtractConfig:
    """--workers 0 (the default) resolved to the cores here or the cluster's CPUs; and at most one worker
    per core when the job runs on this machine alone (no --ray-address / RAY_ADDRESS).

    TV-L1 is CPU-bound, so workers past the core count only compete; and a local Ray told of 64 CPUs
    would start up to 64 worker processes on a 2-core laptop. A cluster's own CPU count is Ray's to
    manage, so `--workers` is left as asked there."""
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


def run_extract(cfg: ExtractConfig, show_progress: bool = True) -> dict:
    """Run (or resume) the whole job; returns the summary also printed by the CLI."""
    started = time.time()
    cfg = resolve_executor(fit_local_workers(cfg))
    with start(cfg) as run:  # started first: process workers import while this process plans
        from .flow import resolve

        backend = resolve(cfg.flow_backend, dict(cfg.flow_params), on_actors=cfg.flow_actors > 0)
        cfg = dataclasses.replace(cfg, flow_backend=backend.name)
        catalog = load_catalog(cfg.dataset, cast(str, cfg.root), cfg.annotations)  # the CLI resolves --root
        cfg = resolve_frame_fps(cfg, catalog)
        chosen, other_rows = select(catalog, cfg)

        def cut() -> list[Task]:  # the first run of this job: by work, probing every video's header
            fs_in, root = filesystem(cast(str, cfg.root))
            work = estimate_work(fs_in, root, chosen, cfg, show_progress) if cfg.plan == "work" else (None, None)
            return make_tasks(chosen, cfg, *work)

        job = open_job(cfg, chosen, cut, {"flow_params_resolved": backend.params, "classes": list(catalog.classes)})
        jobs = jobs_to_run(run_order(job.todo), job.fs, job.out)
        ranged = sum(t.is_ranged for t in job.tasks)
        log.info(
            "%d tasks planned (%d ranged videos), %d already done, %d to run as %d jobs",
            len(job.tasks),
            ranged,
            len(job.tasks) - len(job.todo),
            len(job.todo),
            len(jobs),
        )
        progress = Progress(sum(len(t.items) for t in job.todo), disable=not show_progress)
        run_started = time.time()
        try:
            summaries = run(jobs, cfg, progress)
        finally:
            progress.close()
    remove_stale_pieces(job.fs, job.out, job.tasks)
    slots = cfg.workers * (1 if cfg.executor == "inline" else worker_threads(cfg))
    # summary.json: the name earlier versions wrote
    return finish(
        job,
        other_rows,
        started,
        (REPORT_FILE, "summary.json"),
        retried_tasks=progress.retries,
        split_videos=ranged,
        jobs=len(summaries),
        startup_seconds=round(run_started - started, 3),
        utilization=utilization(summaries, slots),
    )


def remove_stale_pieces(fs, out: str, tasks) -> None:
    """Pieces of ranged videos whose part is published (an assembly killed after publishing, before cleaning)."""
    done = done_parts(fs, out)
    for task in tasks:
        if task.is_ranged and task.part_name in done:
            remove_pieces(fs, out, task)
    if fs.exists(join(out, PIECES_DIR)) and not fs.ls(join(out, PIECES_DIR), detail=False):
        fs.rm(join(out, PIECES_DIR), recursive=True)


def resolve_frame_fps(cfg: ExtractConfig, catalog: Catalog) -> ExtractConfig:
    """--frame-fps, else the dataset's own rate; a frame-folder video with neither stops the job at once."""
    if cfg.frame_fps:
        return cfg
    if catalog.frame_fps:
        return dataclasses.replace(cfg, frame_fps=catalog.frame_fps)
    frames = next((item for item in catalog.items if item.kind == KIND_FRAMES and not item.problem), None)
    if frames is not None:
        raise ValueError(
            f"{frames.rel_path} is a folder of frames, which have no timestamps: pass --frame-fps "
            f"(the rate they were extracted at)"
        )
    return cfg
