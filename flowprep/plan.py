"""The job's plan: which videos, grouped into which tasks, in which order. Pure functions plus the plan file.

Tasks are cut by estimated work (frame pairs x output pixels, `probe.py`), not by video count, so that
every worker stays busy to the end of the job (issue 17):
- a job has about TASKS_PER_WORKER tasks per worker and no task holds more than that share of the work;
- a video worth more than that share is cut into pair ranges of at most 1/RANGES_PER_SHARE of a
  share, each a job of its own (`core.PairRange`), assembled into one sample when all are done;
- task sizes shrink towards the end of the plan (guided self-scheduling: a task takes a fixed fraction
  of the work still uncut), and tasks run longest first, so the last wave is small tasks filling in;
- `videos_per_task` bounds a task's videos (and so its shard's size) from above; the smallest task
  holds ~1/MIN_TASK_SHARE of a worker's share, so even a large job's tail writes no one-video shards.
`plan="count"` keeps the older plan: groups of `videos_per_task` videos, in order.

The plan is written once (`plan.json`) and reused on every re-run, so a job killed at any point and
started again with the same command redoes exactly the tasks that did not publish.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from . import format as fmt
from .config import ExtractConfig
from .core import PairRange
from .datasets import UNSPLIT_NOTE, Catalog, VideoItem
from .manifest import STATUS_FAILED, STATUS_SKIPPED, empty_row
from .storage import join, write_bytes_atomic

TASKS_PER_WORKER = 4  # a worker's share of the work is cut into about this many tasks
MIN_TASK_SHARE = 100  # the smallest task is about 1/100 of a worker's share (1% of tail imbalance at most)
RANGES_PER_SHARE = 8  # a ranged video's ranges are finer than tasks: it is cut because it is the long pole
MIN_RANGE_PAIRS = 4  # a ranged video's ranges hold at least this many frame pairs (each decodes from the start)


class PlanConfig(Protocol):
    """What a plan file and a manifest row read of a job's config (ExtractConfig, ImportConfig)."""

    @property
    def split(self) -> str: ...

    def content_fingerprint(self) -> str: ...


@dataclass(frozen=True)
class Task:
    index: int
    partition: str
    items: tuple[VideoItem, ...]
    work: float = 0.0  # estimated frame pairs x output megapixels (TV-L1 time is ~linear in both)
    ranges: tuple[PairRange, ...] = ()  # a ranged video: its one item, extracted range by range

    @property
    def part_name(self) -> str:
        return f"{self.partition}-{self.index:05d}.parquet"

    @property
    def is_ranged(self) -> bool:
        return bool(self.ranges)


def base_row(item: VideoItem, cfg: PlanConfig) -> dict:
    row = empty_row()
    row.update(
        key=fmt.make_key(item.class_name or "unlabeled", item.video_id),
        video_id=item.video_id,
        class_name=item.class_name,
        label=item.label,
        source=item.rel_path,
        partition=item.splits.get(cfg.split, ""),
    )
    return row


def select(catalog: Catalog, cfg: ExtractConfig) -> tuple[list[VideoItem], list[dict]]:
    """Videos to extract (shuffled, class-mixed, deterministic) and rows for every other video."""
    chosen, rows = [], []
    for item in sorted(catalog.items, key=lambda i: i.rel_path):
        partition = item.splits.get(cfg.split)
        if item.problem:
            rows.append(
                {
                    **base_row(item, cfg),
                    "status": STATUS_FAILED,
                    "cause": item.problem.split(":")[0],
                    "error": item.problem,
                }
            )
        elif partition is None:
            note = UNSPLIT_NOTE if not item.splits else f"not in split {cfg.split}"
            rows.append(
                {
                    **base_row(item, cfg),
                    "status": STATUS_SKIPPED,
                    "cause": "unsplit",
                    "error": f"{item.rel_path}: {note}",
                }
            )
        elif (cfg.partitions and partition not in cfg.partitions) or (not cfg.partitions and partition == "unused"):
            rows.append(
                {
                    **base_row(item, cfg),
                    "status": STATUS_SKIPPED,
                    "cause": "partition not selected",
                    "error": f"{item.rel_path}: partition {partition!r} of split {cfg.split} not selected",
                }
            )
        else:
            chosen.append(item)
    # Shuffled by video: the clips of one untrimmed video stay adjacent (a task reads the video once).
    # A catalog of whole videos has one item per group, so its order is the item shuffle's own.
    groups: dict[str, list[VideoItem]] = {}
    for item in chosen:
        groups.setdefault(item.rel_path, []).append(item)
    order = list(groups.values())
    random.Random(cfg.seed).shuffle(order)
    chosen = [item for group in order for item in group]
    if cfg.limit is not None:
        for item in chosen[cfg.limit :]:
            rows.append(
                {
                    **base_row(item, cfg),
                    "status": STATUS_SKIPPED,
                    "cause": "limit",
                    "error": f"{item.rel_path}: beyond --limit {cfg.limit}",
                }
            )
        chosen = chosen[: cfg.limit]
    return chosen, rows


def make_tasks(
    chosen: list[VideoItem], cfg: ExtractConfig, pairs: list[int] | None = None, megapixels: list[float] | None = None
) -> list[Task]:
    """Tasks over `chosen` (in its order), by estimated work (`pairs[i]` frame pairs of `megapixels[i]`
    each, from `estimate_work`) or, with cfg.plan == 'count' or no estimate, by video count."""
    if cfg.plan == "count" or pairs is None:
        return count_tasks(chosen, cfg.split, cfg.videos_per_task)
    partition_of = [item.splits[cfg.split] for item in chosen]
    # Ranges pair frame i with i+1 (core.PairRange): a strided or lossless layout keeps its videos whole.
    same_video_next = [a.time_range is not None and a.rel_path == b.rel_path for a, b in zip(chosen, chosen[1:])]
    return cut_tasks(
        chosen,
        partition_of,
        pairs,
        megapixels or [1.0] * len(chosen),
        cfg.workers,
        cfg.videos_per_task,
        split_videos=cfg.flow_layout() == fmt.FlowLayout() and not any(item.time_range for item in chosen),
        keep_with_next=same_video_next + [False],
    )


def count_tasks(items: list[VideoItem], split: str, videos_per_task: int) -> list[Task]:
    """Groups of `videos_per_task` items, in order, numbered per partition of `split`."""
    by_partition: dict[str, list[VideoItem]] = {}
    for item in items:
        by_partition.setdefault(item.splits[split], []).append(item)
    return [
        Task(index, partition, tuple(group[start : start + videos_per_task]))
        for partition, group in sorted(by_partition.items())
        for index, start in enumerate(range(0, len(group), videos_per_task))
    ]


def cut_tasks(
    items: list,
    partitions: list[str],
    pairs: list[int],
    megapixels: list[float],
    workers: int,
    max_videos: int,
    tasks_per_worker: int = TASKS_PER_WORKER,
    split_videos: bool = True,
    keep_with_next: list[bool] | None = None,
) -> list[Task]:
    """The work-based cut (see the module's docstring). Pure: `items` may be anything (the simulation
    passes ints). Tasks are numbered per partition in the order of `items`. `keep_with_next[i]`: item i
    and the next share a task when the work allows (clips of one video: one read of it)."""
    work = [max(p, 1) * mpx for p, mpx in zip(pairs, megapixels)]
    share = sum(work) / max(workers, 1)
    largest = share / tasks_per_worker
    smallest = share / MIN_TASK_SHARE
    next_index: dict[str, int] = {}
    tasks: list[Task] = []

    def add(partition: str, group: tuple, group_work: float, ranges: tuple = ()) -> None:
        index = next_index.get(partition, 0)
        next_index[partition] = index + 1
        tasks.append(Task(index, partition, group, group_work, ranges))

    whole = []
    for i, item in enumerate(items):
        n_ranges = (
            min(math.ceil(work[i] * RANGES_PER_SHARE / share), pairs[i] // MIN_RANGE_PAIRS)
            if work[i] > largest and split_videos
            else 1
        )
        if n_ranges > 1:
            bounds = [round(k * pairs[i] / n_ranges) for k in range(n_ranges)]
            ranges = tuple(PairRange(a, b) for a, b in zip(bounds, bounds[1:])) + (PairRange(bounds[-1]),)
            add(partitions[i], (item,), work[i], ranges)
        else:
            whole.append(i)
    uncut = sum(work[i] for i in whole)
    for partition in sorted({partitions[i] for i in whole}):
        group: list[int] = []
        group_work = 0.0
        members = [i for i in whole if partitions[i] == partition]
        for position, i in enumerate(members):
            group.append(i)
            group_work += work[i]
            # Guided: the next task's size is a fixed fraction of the work not yet in a task.
            target = min(largest, max(smallest, (uncut - group_work) / (workers * tasks_per_worker)))
            kept = bool(keep_with_next and keep_with_next[i]) and members[position + 1 : position + 2] == [i + 1]
            if (group_work >= target and not kept) or len(group) >= max_videos or position == len(members) - 1:
                add(partition, tuple(items[j] for j in group), group_work)
                uncut -= group_work
                group, group_work = [], 0.0
    return sorted(tasks, key=lambda t: (t.partition, t.index))


def run_order(tasks: list[Task]) -> list[Task]:
    """Longest first (a ranged video's ranges count one by one): the last jobs are the small ones."""
    return sorted(tasks, key=lambda t: (-(t.work / len(t.ranges) if t.ranges else t.work), t.partition, t.index))


def estimate_work(
    fs, root: str, items: list[VideoItem], cfg: ExtractConfig, show_progress: bool = False, threads: int = 16
) -> tuple[list[int], list[float]]:
    """(frame pairs, output megapixels) of each item from container metadata, probed on `threads` threads
    (headers only: a few KB read per video, local or object store)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from .datasets import KIND_FRAMES
    from .decode import Resize
    from .probe import VideoFacts, fill_from_size, probe_video
    from .storage import is_local

    def facts_of(item: VideoItem) -> VideoFacts:
        path = join(root, item.rel_path)
        try:
            if item.kind == KIND_FRAMES:  # a folder of images: one frame per file, at --frame-fps
                return VideoFacts(len(fs.ls(path, detail=False)), cfg.size_px, cfg.size_px, cfg.frame_fps)
            size = fs.size(path)
            if is_local(root):
                return probe_video(path, size)
            with fs.open(path, "rb") as f:
                return probe_video(f, size)
        except OSError:
            return VideoFacts(0)  # the worker reports what is wrong with it

    videos = list({item.rel_path: item for item in items}.values())  # the clips of a video: one probe
    with ThreadPoolExecutor(threads) as pool:
        probed = list(
            tqdm(
                pool.map(facts_of, videos),
                total=len(videos),
                desc="estimating work",
                unit="video",
                disable=not show_progress or len(videos) < 1000,
                leave=False,
            )
        )
    facts_by_path = {item.rel_path: f for item, f in zip(videos, fill_from_size(probed))}
    resize = Resize(cfg.resize_mode, cfg.size_px)
    pairs, megapixels = [], []
    for item in items:
        f = facts_by_path[item.rel_path]
        frames = f.frames
        if item.time_range is not None and f.fps:  # a clip: its own span, not the video's
            span = math.ceil((item.time_range[1] - item.time_range[0]) * f.fps)
            frames = min(frames, span) if frames else span
        if cfg.fps and f.fps:
            frames = math.ceil(frames * cfg.fps / f.fps)
        if cfg.max_frames:
            frames = min(frames, cfg.max_frames)
        height, width = resize.target_hw(f.height or cfg.size_px, f.width or cfg.size_px)
        pairs.append(max(frames - 1, 1))
        megapixels.append(height * width / 1e6)
    return pairs, megapixels


def read_plan(fs, out: str, cfg: PlanConfig, chosen: list[VideoItem]) -> list[Task] | None:
    """The plan of an earlier run of this job (None: the first run). It wins over a new cut, so that a
    re-run re-creates exactly the first run's tasks whatever --workers it is given."""
    path = join(out, fmt.PLAN_FILE)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as f:
        plan = json.load(f)
    fingerprint = cfg.content_fingerprint()
    if plan["fingerprint"] != fingerprint:
        raise RuntimeError(
            f"{path} was written by a run with different settings (fingerprint {plan['fingerprint']} != "
            f"{fingerprint}); resume with the same flags, or extract into a new --out"
        )
    item_of = {item.plan_id: item for item in chosen}
    missing = [rel for task in plan["tasks"] for rel in task["sources"] if rel not in item_of]
    if missing:
        raise RuntimeError(f"{len(missing)} planned video(s) are no longer in the catalog, e.g. {missing[0]}")
    return [
        Task(
            t["index"],
            t["partition"],
            tuple(item_of[rel] for rel in t["sources"]),
            t.get("work", 0.0),
            tuple(PairRange(a, b) for a, b in t.get("ranges", ())),
        )
        for t in plan["tasks"]
    ]


def write_plan(fs, out: str, cfg: PlanConfig, tasks: list[Task]) -> None:
    plan = {
        "fingerprint": cfg.content_fingerprint(),
        "tasks": [
            {
                "index": t.index,
                "partition": t.partition,
                "sources": [i.plan_id for i in t.items],
                "work": round(t.work, 3),
                **({"ranges": [[r.first, r.end] for r in t.ranges]} if t.ranges else {}),
            }
            for t in tasks
        ],
    }
    write_bytes_atomic(fs, join(out, fmt.PLAN_FILE), json.dumps(plan).encode())


def simulate(tasks: list[Task], workers: int, seconds_of: Callable[[Task, int | None], float]) -> float:
    """Makespan (s) of `tasks` run as the executors run them: jobs in `run_order`, each to the first free
    worker; a ranged task's ranges are jobs of their own, its assembly a job once they are all done.
    `seconds_of(task, range_index)`: a job's duration (range_index None: a whole task)."""
    import heapq

    free_at = [0.0] * workers  # a heap of the times the workers become free
    ranges_end: dict[tuple[str, int], float] = {}
    assemblies = []
    for task in run_order(tasks):
        for k in range(len(task.ranges)) if task.ranges else [None]:
            start = heapq.heappop(free_at)
            end = start + seconds_of(task, k)
            heapq.heappush(free_at, end)
            if k is not None:
                key = (task.partition, task.index)
                ranges_end[key] = max(ranges_end.get(key, 0.0), end)
                if k == len(task.ranges) - 1:
                    assemblies.append(key)
    for key in sorted(assemblies, key=lambda k: ranges_end[k]):  # an assembly waits for its task's last range
        start = max(heapq.heappop(free_at), ranges_end[key])
        heapq.heappush(free_at, start + ASSEMBLY_SECONDS)
    return max(free_at)


ASSEMBLY_SECONDS = 1.0  # reading a ranged video's pieces and writing its sample: small next to its flow
