"""The skeleton of every job that writes shards: plan or reuse, config.json, to-do list, publish, finish.

A job (`extract` in runner.py, `import rawframes` in importer.py) is a plan of tasks plus a function
that turns one item into a sample; everything around them is here, written once, so that resume and
publishing behave the same for every job:
- `open_job`: the output folder, the plan (an earlier run's wins, and `plan.read_plan` refuses one
  whose config fingerprint differs), `config.json`, and the tasks whose part is not yet published;
- `write_items`: a task's items through the per-item function, a failure a row (the others go on);
- `publish`: a task's shards (each atomic), then its manifest part, whose presence marks it done;
- `finish`: the manifest merge, one shard list per partition, `report.json`.
A new job (re-encode, re-shard, ...) is one module calling these four.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from . import format as fmt
from .core import VideoResult
from .datasets import VideoItem
from .errors import last_line
from .manifest import STATUS_FAILED, STATUS_OK, add_shard_digests, done_parts, write_part
from .plan import PlanConfig, Task, base_row, read_plan, write_plan
from .report import REPORT_FILE, merge_manifest
from .storage import filesystem, join, remove_quietly, write_bytes_atomic

# Exceptions that make an item "unreadable file" rather than "internal error" (a job may widen them).
UNREADABLE = (FileNotFoundError, PermissionError, IsADirectoryError)


class JobConfig(PlanConfig, Protocol):
    """What the skeleton reads of a job's config (ExtractConfig and ImportConfig have it)."""

    @property
    def out(self) -> str: ...

    @property
    def shard_max_bytes(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class OpenJob:
    fs: Any  # fsspec file system of the output
    out: str
    tasks: list[Task]  # the whole plan
    todo: list[Task]  # its tasks without a published part


def open_job(
    cfg: JobConfig, items: list[VideoItem], cut: Callable[[], list[Task]], resolved: dict[str, Any]
) -> OpenJob:
    """The output, the plan (`cut()` only on a first run) and config.json (`cfg`, its fingerprint, `resolved`)."""
    fs, out = filesystem(cfg.out)
    fs.makedirs(out, exist_ok=True)
    tasks = read_plan(fs, out, cfg, items)
    if tasks is None:
        tasks = cut()
        write_plan(fs, out, cfg, tasks)
    config = {**cfg.to_dict(), "fingerprint": cfg.content_fingerprint(), **resolved}
    write_bytes_atomic(fs, join(out, fmt.CONFIG_FILE), json.dumps(config, indent=2).encode())
    done = done_parts(fs, out)
    return OpenJob(fs, out, tasks, [t for t in tasks if t.part_name not in done])


def failure(item: VideoItem, exc: Exception, unreadable: tuple[type[Exception], ...] = UNREADABLE) -> dict[str, Any]:
    """The row fields of an item that failed with `exc` (one line naming the file and the cause)."""
    from .decode import VideoError

    if isinstance(exc, VideoError):
        return {"status": STATUS_FAILED, "cause": exc.cause, "error": f"{item.rel_path}: {exc}"}
    if isinstance(exc, unreadable):
        return {"status": STATUS_FAILED, "cause": "unreadable file", "error": f"{item.rel_path}: {exc!r}"}
    last = last_line(traceback.format_exc(limit=-1))
    return {"status": STATUS_FAILED, "cause": "internal error", "error": f"{item.rel_path}: {exc!r} ({last})"}


def ok_fields(
    shard: str, num_frames: int, nbytes: int, seconds: dict[str, float], write_s: float, num_flows: int
) -> dict[str, Any]:
    return dict(
        status=STATUS_OK,
        shard=shard,
        frames=num_frames,
        flows=num_flows,
        bytes=nbytes,
        seconds_write=write_s,
        **{f"seconds_{k}": v for k, v in seconds.items()},
    )


def write_items(
    writer: Any,
    task: Task,
    cfg: JobConfig,
    worker: str,
    make: Callable[[VideoItem], VideoResult],
    on_video: Callable[[dict[str, Any]], None] | None = None,
    unreadable: tuple[type[Exception], ...] = UNREADABLE,
    flows_of: Callable[[int], int] = lambda num_frames: num_frames - 1,
) -> list[dict[str, Any]]:
    """Every item of `task` through `make` into `writer`; returns the manifest rows, one per item.
    `flows_of(num_frames)`: how many flows a sample of that many frames holds (its flow layout's count)."""
    rows = []
    for item in task.items:
        row = {**base_row(item, cfg), "task": task.index, "worker": worker}
        try:
            result = make(item)
        except Exception as exc:  # a bug or an exotic file must not take the other items down
            row.update(failure(item, exc, unreadable))
        else:
            t0 = time.perf_counter()
            shard = writer.write(result.key, result.members)
            write_s = time.perf_counter() - t0
            row.update(
                ok_fields(
                    shard, result.num_frames, result.nbytes(), result.seconds, write_s, flows_of(result.num_frames)
                )
            )
        rows.append(row)
        if on_video:
            on_video(row)
    return rows


def publish(
    fs: Any, out: str, task: Task, shard_max_bytes: int, fill: Callable[[Any], list[dict[str, Any]]]
) -> dict[str, int]:
    """Shards of `task` written by `fill(writer)` (which returns the task's rows), then its part; its summary."""
    from .shards import ShardWriter, task_shard_paths

    # A previous attempt of this task may have published some shards before dying: start clean.
    remove_quietly(fs, task_shard_paths(fs, out, task.partition, task.index))
    writer = ShardWriter(fs, out, task.partition, task.index, shard_max_bytes)
    try:
        rows = fill(writer)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    add_shard_digests(rows, writer.digests)
    write_part(fs, out, task.partition, task.index, rows)
    return summarize_rows(rows)


def summarize_rows(rows: list[dict[str, Any]]) -> dict[str, int]:
    ok = [r for r in rows if r["status"] == STATUS_OK]
    return {
        "videos": len(rows),
        "ok": len(ok),
        "failed": sum(r["status"] == STATUS_FAILED for r in rows),
        "frames": sum(r["frames"] for r in ok),
        "bytes": sum(r["bytes"] for r in ok),
    }


def finish(
    job: OpenJob,
    other_rows: list[dict[str, Any]],
    started: float,
    report_names: tuple[str, ...] = (REPORT_FILE,),
    **extra: Any,
) -> dict[str, Any]:
    """The merged manifest, `<partition>.shards.txt` and the report (written under each of `report_names`)."""
    fs, out = job.fs, job.out
    report = merge_manifest(fs, out, other_rows, [join(out, fmt.PARTS_DIR, t.part_name) for t in job.tasks])
    for partition, names in report.shards.items():
        write_bytes_atomic(fs, join(out, partition + fmt.SHARD_LIST_SUFFIX), ("\n".join(sorted(names)) + "\n").encode())
    summary = report.to_dict(
        time.time() - started, tasks=len(job.tasks), resumed_tasks=len(job.tasks) - len(job.todo), **extra
    )
    for name in report_names:
        write_bytes_atomic(fs, join(out, name), json.dumps(summary, indent=2).encode())
    return summary
