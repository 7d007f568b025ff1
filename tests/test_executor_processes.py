"""`--executor processes`: worker processes on this machine without Ray, with Ray's fault model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from flowprep.cli import main

BIN = Path(sys.executable).parent
ARGS = ["--size", "48", "--no-progress", "--flow-backend", "opencv"]


def worker_processes(pid: int) -> list[int]:
    """Live worker processes of the driver `pid` (its children but multiprocessing's resource tracker), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                state, ppid = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:2]
                worker = b"resource_tracker" not in Path(f"/proc/{entry}/cmdline").read_bytes()
            except (OSError, ValueError):
                continue  # exited while we looked
            if int(ppid) == pid and state != "Z" and worker:
                found.append(int(entry))
    return found


def test_processes_give_the_same_shards_as_inline(tmp_path, write_video):
    root = tmp_path / "videos"
    for i in range(3):
        write_video(root / f"c{i % 2}" / f"v{i}.avi", frames=12, size_px=96, seed=i)
    outs = {}
    for executor in ("inline", "processes"):
        outs[executor] = tmp_path / executor
        result = CliRunner().invoke(
            main,
            [
                "extract",
                "--dataset",
                "folder",
                "--root",
                str(root),
                "--out",
                str(outs[executor]),
                "--executor",
                executor,
                "--workers",
                "2",
                *ARGS,
            ],
        )
        assert result.exit_code == 0, result.output
    shards = {e: {p.name: p.read_bytes() for p in out.glob("*.tar")} for e, out in outs.items()}
    assert shards["processes"] == shards["inline"] and shards["inline"]
    report = json.loads((outs["processes"] / "report.json").read_text())
    assert report["ok"] == 3 and report["utilization"]["jobs"] == report["jobs"] > 3  # a video split


def test_a_worker_killed_mid_job_is_replaced_and_its_job_redone(tmp_path, write_video):
    root = tmp_path / "videos"
    for i in range(8):
        write_video(root / f"c{i % 2}" / f"v{i}.avi", frames=16, size_px=128, seed=i)
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [
            str(BIN / "flowprep"),
            "extract",
            "--dataset",
            "folder",
            "--root",
            str(root),
            "--out",
            str(out),
            "--executor",
            "processes",
            "--workers",
            "2",
            "--plan",
            "count",
            "--videos-per-task",
            "2",
            *ARGS,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while not (out / "_parts").exists() and time.time() < deadline:  # the first task is done: all are warm
            time.sleep(0.05)
        workers = worker_processes(driver.pid)
        assert workers, "no worker process found"
        os.kill(workers[0], signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, stdout + stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] == 8 and report["retried_tasks"] >= 1 and report["tasks"] == 4
    verified = CliRunner().invoke(main, ["verify", str(out)])
    assert verified.exit_code == 0, verified.output
