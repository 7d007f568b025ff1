"""Work-based planning (issue 17): tasks of equal work, long videos split into pair ranges, the split
sample byte-identical to the unsplit one, a kill mid split video resumed, utilization in the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowprep import format as fmt
from flowprep.cli import main
from flowprep.core import PairRange
from flowprep.plan import MIN_RANGE_PAIRS, RANGES_PER_SHARE, TASKS_PER_WORKER, cut_tasks, run_order, simulate
from flowprep.report import utilization

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
FAST = ["--executor", "inline", "--no-progress", "--flow-backend", "opencv", "--size", "32"]


def extract(*args: str) -> str:
    result = CliRunner().invoke(main, ["extract", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def only_shard(out: Path) -> bytes:
    (shard,) = sorted(out.glob("*.tar"))
    return shard.read_bytes()


# ---- the cut (pure) --------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 16])
def test_cut_bounds_every_task_and_covers_every_video_once(workers):
    pairs = [300] * 200 + [30] * 40 + [5000, 12000]  # clips, short clips, two long videos
    parts = ["train" if i % 4 else "test" for i in range(len(pairs))]
    tasks = cut_tasks(list(range(len(pairs))), parts, pairs, [1.0] * len(pairs), workers, max_videos=32)
    share = sum(pairs) / workers
    seen = sorted(i for t in tasks for i in t.items)
    assert seen == list(range(len(pairs))), "every video in exactly one task"
    for t in tasks:
        assert len(t.items) <= 32 and {parts[i] for i in t.items} == {t.partition}
        if t.ranges:
            (i,) = t.items
            assert t.ranges[0].first == 0 and t.ranges[-1].end is None
            assert all(a.end == b.first for a, b in zip(t.ranges, t.ranges[1:])), "ranges are contiguous"
            assert all(r.end - r.first >= MIN_RANGE_PAIRS for r in t.ranges[:-1])
            assert t.work / len(t.ranges) <= share / RANGES_PER_SHARE * 1.01
        elif len(t.items) > 1:  # a task of several videos stops short of a worker's share / TASKS_PER_WORKER
            assert t.work - pairs[t.items[-1]] < share / TASKS_PER_WORKER
    indices = {p: sorted(t.index for t in tasks if t.partition == p) for p in ("train", "test")}
    assert all(ix == list(range(len(ix))) for ix in indices.values()), "tasks numbered 0..n-1 per partition"
    assert (sum(t.is_ranged for t in tasks) > 0) == (workers > 1)  # one worker: nothing to gain by splitting


def test_run_order_is_longest_first_and_the_tail_is_small():
    pairs = [280] * 500 + [2000]
    tasks = cut_tasks(list(range(len(pairs))), ["all"] * len(pairs), pairs, [1.0] * len(pairs), 8, max_videos=32)
    sizes = [t.work / max(len(t.ranges), 1) for t in run_order(tasks)]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-1] <= sizes[0] / 4, "the last jobs are the small ones"


def test_simulated_large_job_finishes_within_5_percent_of_total_work_over_workers():
    import numpy as np

    rng = np.random.default_rng(0)
    pairs = list(rng.integers(250, 300, size=20_000)) + list(rng.integers(1500, 18_000, size=200))
    rng.shuffle(pairs)
    pairs = [int(p) for p in pairs]
    noise = rng.uniform(0.9, 1.1, size=len(pairs))

    def seconds_of(task, k):
        if k is None:
            return sum(pairs[i] * noise[i] for i in task.items)
        (i,) = task.items
        return ((task.ranges[k].end or pairs[i]) - task.ranges[k].first) * noise[i]

    workers = 128
    tasks = cut_tasks(list(range(len(pairs))), ["all"] * len(pairs), pairs, [1.0] * len(pairs), workers, 32)
    ideal = sum(p * n for p, n in zip(pairs, noise)) / workers
    assert simulate(tasks, workers, seconds_of) <= 1.05 * ideal


def test_utilization_and_tail_of_a_known_timeline():
    jobs = [
        {"started_at": 0, "ended_at": 10, "cpus": 1},
        {"started_at": 0, "ended_at": 6, "cpus": 1},
        {"started_at": 6, "ended_at": 8, "cpus": 1},
    ]  # two slots: both busy until 8, then one until 10
    u = utilization(jobs, slots=2)
    assert u["busy_fraction"] == pytest.approx(18 / 20) and u["tail_s"] == pytest.approx(2.0)
    assert utilization(jobs[:1], slots=2)["tail_s"] == pytest.approx(10.0)  # never all busy: all tail


def test_pair_range_rejects_empty_ranges():
    with pytest.raises(ValueError):
        PairRange(5, 5)


# ---- split videos, end to end ----------------------------------------------------------------


@pytest.fixture
def one_long_video(tmp_path, write_video):
    root = tmp_path / "videos"
    write_video(root / "walk" / "long.avi", frames=40, size_px=128)
    return root


def test_split_video_equals_the_unsplit_one_byte_for_byte(one_long_video, tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    extract("--dataset", "folder", "--root", str(one_long_video), "--out", str(whole), *FAST, "--plan", "count")
    extract("--dataset", "folder", "--root", str(one_long_video), "--out", str(split), *FAST, "--workers", "2")
    plan = json.loads((split / fmt.PLAN_FILE).read_text())
    (task,) = plan["tasks"]
    assert len(task["ranges"]) >= 3 and task["ranges"][-1][1] is None
    assert only_shard(split) == only_shard(whole)
    report = json.loads((split / "report.json").read_text())
    assert report["split_videos"] == 1 and report["jobs"] == len(task["ranges"]) + 1
    assert not (split / "_pieces").exists()
    assert CliRunner().invoke(main, ["verify", str(split)]).exit_code == 0


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data/videos (the real clips)")
def test_split_real_h264_clip_equals_the_unsplit_one(tmp_path):
    """B-frames, an MP4 edit list: the ranges still cut at the same frames as one decode does."""
    root = tmp_path / "videos" / "clean"
    root.mkdir(parents=True)
    shutil.copy(DATA / "kinetics_cleaning_pool_32frames.mp4", root / "pool.mp4")
    whole, split = tmp_path / "whole", tmp_path / "split"
    extract("--dataset", "folder", "--root", str(root.parent), "--out", str(whole), *FAST, "--plan", "count")
    extract("--dataset", "folder", "--root", str(root.parent), "--out", str(split), *FAST, "--workers", "2")
    assert json.loads((split / "report.json").read_text())["split_videos"] == 1
    assert only_shard(split) == only_shard(whole)


def test_kill_in_the_middle_of_a_split_video_resumes_to_the_same_sample(one_long_video, tmp_path, monkeypatch):
    import flowprep.core as core

    args = ["--dataset", "folder", "--root", str(one_long_video), *FAST, "--workers", "2"]
    whole = tmp_path / "whole"
    extract(*args, "--out", str(whole), "--plan", "count")
    out = tmp_path / "out"
    real, calls = core.process_video, {"n": 0}

    def dies_in_the_third_range(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(core, "process_video", dies_in_the_third_range)
    killed = CliRunner().invoke(main, ["extract", *args, "--out", str(out)])
    assert killed.exit_code == 1 and "Aborted" in killed.output
    assert len(list((out / "_pieces").rglob("*.tar"))) == 2, "the two finished ranges are kept"
    assert not list(out.glob("*.tar")) and not list((out / fmt.PARTS_DIR).glob("*.parquet"))

    monkeypatch.setattr(core, "process_video", real)
    extract(*args, "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    ranges = len(json.loads((out / fmt.PLAN_FILE).read_text())["tasks"][0]["ranges"])
    assert report["jobs"] == ranges - 2 + 1, "only the missing ranges and the assembly ran"
    assert only_shard(out) == only_shard(whole)
    assert not (out / "_pieces").exists()


def test_a_broken_split_video_is_one_failed_row(tmp_path, one_long_video):
    """Damage past the middle: the ranges that decode it fail, and the video is one failed row naming it."""
    video = one_long_video / "walk" / "long.avi"
    data = video.read_bytes()
    video.write_bytes(data[: int(len(data) * 0.7)])  # truncated: the header still counts 40 frames
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["extract", "--dataset", "folder", "--root", str(one_long_video), "--out", str(out), *FAST, "--workers", "2"],
    )
    assert result.exit_code != 0 or "failed: 1" in result.output
    from flowprep.manifest import read_manifest
    from flowprep.storage import filesystem

    (row,) = read_manifest(*filesystem(str(out)))
    assert row["status"] == "failed" and row["cause"] == "truncated" and "walk/long.avi" in row["error"]
    assert not list(out.glob("*.tar")) or all(p.stat().st_size <= 1024 for p in out.glob("*.tar"))


def test_jobs_to_run_are_the_missing_ranges_then_the_assembly(tmp_path):
    from flowprep.datasets import VideoItem
    from flowprep.jobs import Job, JobQueue, jobs_to_run
    from flowprep.plan import Task
    from flowprep.ranges import piece_path
    from flowprep.storage import filesystem

    fs, out = filesystem(str(tmp_path))
    item = VideoItem("v", "c", 0, "c/v.avi", {"1": "train"})
    task = Task(0, "train", (item,), 30.0, (PairRange(0, 10), PairRange(10, 20), PairRange(20)))
    whole = Task(1, "train", (item,), 5.0)
    assert jobs_to_run([task, whole], fs, out) == [Job(task, 0), Job(task, 1), Job(task, 2), Job(whole)]
    for k in (0, 2):
        path = piece_path(out, task, k)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe(path, b"")
    queue = JobQueue(jobs_to_run([task], fs, out))
    assert len(queue) == 1 and queue.pop() == Job(task, 1)
    queue.finished(Job(task, 1))  # its last missing range: the assembly is next
    assert queue.pop() == Job(task, assemble=True)
    fs.pipe(piece_path(out, task, 1), b"")
    assert jobs_to_run([task], fs, out) == [Job(task, assemble=True)]
