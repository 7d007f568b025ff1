"""The manifest's Parquet parts: what a task writes is what the driver merges and readers read back."""

import subprocess
import sys

import pytest

from flowprep.manifest import empty_row, read_manifest, rows_to_parquet_bytes, table_from_parquet_bytes, write_part
from flowprep.report import merge_manifest
from flowprep.storage import filesystem


def rows(n: int, task: int) -> list[dict]:
    out = []
    for i in range(n):
        row = empty_row()
        row.update(
            key=f"c/v{task}_{i}",
            video_id=f"v{task}_{i}",
            class_name="c",
            label=task,
            status="ok",
            partition="train",
            task=task,
            frames=10 + i,
            seconds_flow=0.5 * i,
        )
        out.append(row)
    return out


def test_parquet_bytes_round_trip_and_column_selection():
    written = rows(3, task=1)
    data = rows_to_parquet_bytes(written)
    assert table_from_parquet_bytes(data, "part").to_pylist() == written
    assert table_from_parquet_bytes(data, "part", columns=["key", "frames"]).to_pylist() == [
        {"key": r["key"], "frames": r["frames"]} for r in written
    ]


def test_merge_concatenates_every_part_once(tmp_path):
    fs, out = filesystem(str(tmp_path))
    for task in range(5):
        write_part(fs, out, "train", task, rows(task + 1, task))
    parts = sorted(fs.glob(f"{out}/_parts/*.parquet"))
    skipped = {**empty_row(), "key": "c/missing", "status": "skipped", "cause": "missing"}
    report = merge_manifest(fs, out, [skipped], parts, parts_per_fetch=2, rows_per_group=4)
    merged = read_manifest(fs, out)
    assert sorted(r["key"] for r in merged) == sorted(
        ["c/missing"] + [r["key"] for t in range(5) for r in rows(t + 1, t)]
    )
    assert report.totals["ok"] == 15 and report.totals["skipped"] == 1


def test_a_corrupt_part_fails_the_merge_naming_it(tmp_path):
    fs, out = filesystem(str(tmp_path))
    write_part(fs, out, "train", 0, rows(2, 0))
    (tmp_path / "_parts" / "train-00001.parquet").write_bytes(b"PAR1 cut short")
    parts = sorted(fs.glob(f"{out}/_parts/*.parquet"))
    with pytest.raises(
        RuntimeError,
        match=r"train-00001\.parquet: not a readable Parquet file \(14 bytes\).*"
        r"delete it and re-run",
    ):
        merge_manifest(fs, out, [], parts)
    assert not (tmp_path / "manifest.parquet").exists()  # the atomic write left no half manifest
    (tmp_path / "_parts" / "train-00001.parquet").unlink()
    merge_manifest(fs, out, [], sorted(fs.glob(f"{out}/_parts/*.parquet")))
    assert len(read_manifest(fs, out)) == 2  # the other part was not lost


# A process that merges and reads a manifest and then exits, like `flowprep extract` does. Before the fix,
# `pq.read_table` on a file object left scanner work behind and about half of such processes aborted at
# exit (SIGABRT, "terminate called without an active exception") after their work had succeeded.
READ_THEN_EXIT = """
import sys
from flowprep.manifest import read_manifest, write_part, empty_row
from flowprep.report import merge_manifest
from flowprep.storage import filesystem
fs, out = filesystem(sys.argv[1])
for task in range(4):
    write_part(fs, out, "train", task, [{**empty_row(), "key": f"c/v{task}", "status": "ok"}])
merge_manifest(fs, out, [], sorted(fs.glob(out + "/_parts/*.parquet")))
assert len(read_manifest(fs, out)) == 4
"""


def test_a_process_that_reads_manifests_exits_cleanly(tmp_path):
    # One at a time: the abort is a race at exit, and it showed most often in an unloaded process.
    runs = [
        subprocess.run(
            [sys.executable, "-c", READ_THEN_EXIT, str(tmp_path / f"run{i}")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        for i in range(8)
    ]
    failed = [(r.returncode, r.stderr[-1500:]) for r in runs if r.returncode != 0]
    assert not failed, f"{len(failed)} of 8 processes did not exit cleanly: {failed[0]}"
