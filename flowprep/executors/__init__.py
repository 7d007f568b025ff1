"""Executors: where a plan's jobs run. Each is one module with the same two functions:

    run(jobs: list[Job], cfg: ExtractConfig, progress: Progress) -> list[dict]   # the jobs' summaries
    start(cfg) -> a context manager yielding its `run`, its workers started (processes: they import
                  while the driver plans; the others start nothing ahead)

- inline: in this process, one job after another (debugging, tests);
- processes: `--workers` long-lived processes on this machine, no Ray (starts in ~1 s);
- ray: Ray tasks on a local Ray or a cluster, and the flow actors (`flow_pool.FlowPool`) beside them.
A job's own work is `jobs.run_job` on every executor; what differs is where it runs and how a dead
worker is noticed and its job retried. A new executor is one module plus one line in EXECUTORS.
"""

from __future__ import annotations

import dataclasses
import os
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from ..registry import Registry

if TYPE_CHECKING:
    from ..config import ExtractConfig
    from ..jobs import Job
    from ..progress import Progress

EXECUTORS = Registry(
    "executor",
    {
        "inline": "flowprep.executors.inline:start",
        "processes": "flowprep.executors.processes:start",
        "ray": "flowprep.executors.ray:start",
    },
)


class Executor(Protocol):
    def __call__(self, jobs: list[Job], cfg: ExtractConfig, progress: Progress) -> list[dict[str, Any]]: ...


def ray_address(cfg: ExtractConfig) -> str | None:
    """The cluster to join: --ray-address, else RAY_ADDRESS (set by `ray job submit`), else None (local)."""
    return cfg.ray_address or os.environ.get("RAY_ADDRESS") or None


def resolve_executor(cfg: ExtractConfig) -> ExtractConfig:
    """`auto` made concrete: Ray for a cluster (and flow actors); plain processes on one machine start faster."""
    if cfg.executor != "auto":
        return cfg
    use_ray = ray_address(cfg) is not None or cfg.flow_actors > 0
    return dataclasses.replace(cfg, executor="ray" if use_ray else "processes")


def start(cfg: ExtractConfig) -> AbstractContextManager[Executor]:
    """`cfg.executor`'s run function (a resolved name, not 'auto'), its workers started."""
    return EXECUTORS.get(str(cfg.executor))(cfg)  # type: ignore[no-any-return]
