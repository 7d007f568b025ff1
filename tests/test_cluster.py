"""Fault tolerance on a real two-node Ray cluster on loopback: processes are killed for real.

A head and a second node are started with `ray start` (1 CPU each) as process groups of their own;
the tests kill a worker process mid-task, a whole node, and the driver (SIGKILL), then check that
every video is in the output exactly once and `flowprep verify` passes. Teardown stops only the
process groups these tests started. Ray swaps 127.0.0.1 for the machine's address, so the module
runs only inside a private network namespace (scripts/run_tests.sh sets FLOWPREP_NETNS=1 there):

    unshare -n sh -c 'ip link set lo up && FLOWPREP_NETNS=1 .venv/bin/python -m pytest tests/test_cluster.py'
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
IN_NETNS = os.environ.get("FLOWPREP_NETNS") == "1"
needs_netns = pytest.mark.skipif(
    not IN_NETNS,
    reason="starts a Ray cluster: run inside `unshare -n` with FLOWPREP_NETNS=1 (scripts/run_tests.sh does)",
)
BIN = Path(sys.executable).parent
# Videos slow enough (about 0.5 s each on one core) that a kill lands while a task runs.
# OpenCV's TV-L1, not the faster default: the kill tests need tasks that last a few seconds.
# --plan count: the tests count tasks of 2 videos (the work plan's cut is tested in test_plan.py).
JOB = [
    "--size",
    "64",
    "--max-frames",
    "8",
    "--workers",
    "2",
    "--videos-per-task",
    "2",
    "--plan",
    "count",
    "--no-progress",
    "--flow-backend",
    "opencv",
]
VIDEOS = 16  # 4 classes x 4


def wait_for(predicate, what: str, timeout_s: float = 90.0):
    """Poll `predicate` until it returns something truthy; a hung cluster fails the test, never CI."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def node_processes(pgid: int) -> dict[int, str]:
    """pid -> process title of the live processes of the node started as process group `pgid`:
    the group's members and their children (Ray puts each worker in a session of its own, as a
    child of the node's raylet). Read from /proc."""
    procs = {}  # pid -> (ppid, pgid, title)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            state, ppid, group = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:3]
            if state != "Z":
                procs[int(entry)] = (int(ppid), int(group), Path(f"/proc/{entry}/cmdline").read_text().split("\0")[0])
        except (OSError, ValueError):
            continue  # exited while we looked
    members = {pid for pid, (_, group, _) in procs.items() if group == pgid}
    return {pid: title for pid, (ppid, group, title) in procs.items() if pid in members or ppid in members}


def running_task_pid(pgid: int) -> int | None:
    """A Ray worker of node `pgid` now executing a flowprep task (Ray titles it after the function)."""
    return next((pid for pid, title in node_processes(pgid).items() if title.startswith("ray::run_job")), None)


def stop_node(pgid: int) -> None:
    """SIGTERM, then SIGKILL, the node's process group and its workers (never anything else)."""
    for sig, grace_s in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):
        for pid in node_processes(pgid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            wait_for(lambda: not node_processes(pgid), f"node {pgid} to exit", timeout_s=grace_s)
            return
        except AssertionError:
            continue


class Cluster:
    """A head and extra nodes started by `ray start`, each a process group of its own."""

    def __init__(self, env: dict):
        self.env = env
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = tempfile.mkdtemp(prefix="fp-ray-", dir="/tmp")  # short: Ray's socket paths have a limit
        self.groups: list[int] = []

    def start_node(self, *args: str) -> int:
        proc = subprocess.Popen(
            [str(BIN / "ray"), "start", "--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats", *args],
            env=self.env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.groups.append(proc.pid)  # start_new_session: the group id is this pid, and Ray's daemons stay in it
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"ray start {' '.join(args)} failed:\n{output[-3000:]}"
        return proc.pid

    def stop(self) -> None:
        for pgid in reversed(self.groups):
            stop_node(pgid)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on loopback; the cluster's nodes inherit its AWS_* variables."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    server.stop()


@pytest.fixture(scope="module")
def cluster(s3_endpoint):
    if not IN_NETNS:
        pytest.skip("needs a private network namespace (FLOWPREP_NETNS=1)")
    # The venv's bin first: a Ray Job's entrypoint is a shell command (`flowprep extract ...`) and the
    # test may run from an interpreter whose venv is not activated.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {
        **os.environ,
        **s3_endpoint,
        "PATH": path,
        "RAY_USAGE_STATS_ENABLED": "0",
        # Explicit, so that a token left in ~/.ray by some local ray.init() does not split the cluster
        # into nodes that use it and nodes that do not (the namespace is private: nothing else can connect).
        "RAY_AUTH_MODE": "disabled",
        # A dead node is declared dead after ~1.5 s instead of ~15 s, so its tasks move sooner.
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_timeout_ms": "500",
        "RAY_health_check_failure_threshold": "3",
    }
    env.pop("RAY_ADDRESS", None)
    cluster = Cluster(env)
    try:
        cluster.dashboard = f"http://127.0.0.1:{free_port()}"  # the Ray Jobs API is served by the dashboard
        cluster.start_node(
            "--head",
            f"--port={cluster.port}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={cluster.dashboard.rsplit(':', 1)[1]}",
            f"--temp-dir={cluster.temp_dir}",
        )
        cluster.worker_group = cluster.start_node(f"--address={cluster.address}")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from flowprep.datasets.sample import generate

    root = tmp_path_factory.mktemp("videos")
    generate(root, videos_per_class=VIDEOS // 4, frames=8, size_px=64)
    return root


def extract_cmd(cluster, root: Path, out: str, *extra: str) -> list[str]:
    return [
        str(BIN / "flowprep"),
        "extract",
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--out",
        out,
        "--ray-address",
        cluster.address,
        *JOB,
        *extra,
    ]


def run(cmd: list[str], env: dict, timeout_s: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)


def check_output(out: str, env: dict, expected_ok: int) -> dict:
    """Every video exactly once in the manifest and in the shards, and `flowprep verify` passes."""
    verified = run([str(BIN / "flowprep"), "verify", out], env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    code = (
        "import json,sys; from flowprep.storage import filesystem; from flowprep.manifest import read_manifest;"
        "from flowprep.verify import iter_samples; fs,o=filesystem(sys.argv[1]); rows=read_manifest(fs,o);"
        "keys=[k for r in rows if r['status']=='ok' for k,_ in [(r['key'],0)]];"
        "shard_keys=[k for s in sorted({r['shard'] for r in rows if r['shard']}) "
        "for k,_ in iter_samples(fs.open(o+'/'+s,'rb'))];"
        "print(json.dumps({'rows':[[r['key'],r['status'],r['cause']] for r in rows],'shard_keys':shard_keys,"
        "'report':json.loads(fs.cat(o+'/report.json'))}))"
    )
    facts = json.loads(run([sys.executable, "-c", code, out], env).stdout)
    ok_keys = [key for key, status, _ in facts["rows"] if status == "ok"]
    assert len(ok_keys) == expected_ok and len(set(ok_keys)) == expected_ok
    assert sorted(facts["shard_keys"]) == sorted(ok_keys), "shards and manifest disagree"
    assert len([row[0] for row in facts["rows"]]) == len({row[0] for row in facts["rows"]}), "a video listed twice"
    return facts


@needs_netns
def test_corrupt_video_is_a_failed_row_and_not_retried(cluster, videos, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(videos / "drift_up", root / "drift_up")  # 4 videos
    (root / "drift_up" / "corrupt.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI " + os.urandom(2000))
    out = tmp_path / "out"
    # One task holds every video, so a retry of it would show as retried_tasks > 0.
    done = run(extract_cmd(cluster, root, str(out), "--videos-per-task", "32", "--max-frames", "2"), cluster.env)
    assert done.returncode == 3, f"expected exit 3 (some videos failed):\n{done.stdout}\n{done.stderr[-3000:]}"
    facts = check_output(str(out), cluster.env, expected_ok=4)
    (bad,) = [row for row in facts["rows"] if row[1] == "failed"]
    assert bad[0].endswith("/corrupt") and bad[2]
    report = facts["report"]
    assert report["failures_by_cause"] == {bad[2]: 1}
    assert report["retried_tasks"] == 0 and report["tasks"] == 1


@needs_netns
def test_runs_as_a_ray_job(cluster, videos, tmp_path):
    """`ray job submit -- flowprep extract ...` with no --ray-address: the driver runs on the head and
    joins the cluster through the RAY_ADDRESS the job runner sets."""
    out = tmp_path / "out"
    submitted = run(
        [
            str(BIN / "ray"),
            "job",
            "submit",
            "--address",
            cluster.dashboard,
            "--",
            "flowprep",
            "extract",
            "--dataset",
            "folder",
            "--root",
            str(videos),
            "--out",
            str(out),
            *JOB,
            "--size",
            "32",
            "--max-frames",
            "2",
            "--videos-per-task",
            "4",
        ],
        cluster.env,
    )
    logs = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0 and "succeeded" in logs, logs[-3000:]
    assert "Connecting to existing Ray cluster" in logs  # not a private local Ray on the head
    assert check_output(str(out), cluster.env, expected_ok=VIDEOS)["report"]["tasks"] == VIDEOS // 4


@needs_netns
def test_driver_killed_with_sigkill_resumes_from_what_is_published(cluster, videos, tmp_path):
    out = tmp_path / "out"
    driver = subprocess.Popen(
        extract_cmd(cluster, videos, str(out)),
        env=cluster.env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: len(list((out / "_parts").glob("*.parquet"))) >= 2 or driver.poll() is not None,
            "two tasks to publish their parts",
        )
        assert driver.poll() is None, "the job finished before it could be killed: make it longer"
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    published = len(list((out / "_parts").glob("*.parquet")))
    assert not (out / "manifest.parquet").exists()

    again = run(extract_cmd(cluster, videos, str(out)), cluster.env)
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    report = check_output(str(out), cluster.env, expected_ok=VIDEOS)["report"]
    assert report["tasks"] == VIDEOS // 2 and report["resumed_tasks"] >= published >= 2


def crash_on_poison_videos() -> None:
    """Ray worker setup hook (this test only): a video named poison* kills its worker process, as a
    segfault in a decoder would."""
    import flowprep.core as core

    original = core.process_video

    def process_video(source, meta, *args, **kwargs):
        if meta["source"].rsplit("/", 1)[-1].startswith("poison"):
            os.kill(os.getpid(), signal.SIGKILL)
        return original(source, meta, *args, **kwargs)

    core.process_video = process_video


@needs_netns
def test_video_that_kills_its_worker_becomes_a_failed_row(cluster, videos, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(videos / "drift_left", root / "drift_left")  # 4 videos
    shutil.copy(next((videos / "drift_left").glob("*.avi")), root / "drift_left" / "poison_000.avi")
    out = tmp_path / "out"
    repo = str(Path(__file__).resolve().parents[1])
    driver = f"""
import json, ray
from flowprep.config import ExtractConfig
from flowprep.runner import run_extract
ray.init(address={cluster.address!r}, log_to_driver=False, runtime_env={{
    "worker_process_setup_hook": "tests.test_cluster.crash_on_poison_videos", "env_vars": {{"PYTHONPATH": {repo!r}}}}})
cfg = ExtractConfig(dataset="folder", root={str(root)!r}, out={str(out)!r}, size_px=32, max_frames=2, workers=2,
                    videos_per_task=8, plan="count", ray_address={cluster.address!r})
print(json.dumps(run_extract(cfg, show_progress=False)))
"""
    done = run([sys.executable, "-c", driver], cluster.env)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    facts = check_output(str(out), cluster.env, expected_ok=4)
    (bad,) = [row for row in facts["rows"] if row[1] == "failed"]
    assert bad[0] == "drift_left/poison_000" and bad[2] == "worker crashed"
    # Two attempts died on it; the third marked it failed and finished the task.
    assert facts["report"]["retried_tasks"] == 2 and facts["report"]["tasks"] == 1


@needs_netns
def test_worker_killed_in_the_middle_of_a_split_video(cluster, tmp_path, write_video):
    """One long video on two nodes is split into ranges; a worker killed inside one has that range
    redone, and the assembled sample equals the unsplit extraction byte for byte."""
    from flowprep.verify import iter_samples

    root = tmp_path / "root"
    write_video(root / "walk" / "long.avi", frames=64, size_px=200)
    # 192 px: a range (>= 4 pairs) takes a few seconds of OpenCV's TV-L1, so the kill lands inside one
    common = ["--dataset", "folder", "--root", str(root), "--size", "192", "--no-progress", "--flow-backend", "opencv"]
    out = tmp_path / "split"
    driver = subprocess.Popen(
        [
            str(BIN / "flowprep"),
            "extract",
            *common,
            "--out",
            str(out),
            "--workers",
            "2",
            "--ray-address",
            cluster.address,
        ],
        env=cluster.env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid = wait_for(lambda: running_task_pid(cluster.worker_group), "a range running on the second node")
        time.sleep(0.5)  # let the range report its start, so the retry is counted
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, stdout + stderr[-3000:]
    report = check_output(str(out), cluster.env, expected_ok=1)["report"]
    assert report["split_videos"] == 1 and report["retried_tasks"] >= 1 and report["jobs"] >= 3
    assert not (out / "_pieces").exists(), "the pieces go once the sample is published"
    whole = tmp_path / "whole"
    done = run(
        [str(BIN / "flowprep"), "extract", *common, "--out", str(whole), "--executor", "inline", "--plan", "count"],
        cluster.env,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    (split_tar,), (whole_tar,) = sorted(out.glob("*.tar")), sorted(whole.glob("*.tar"))
    assert split_tar.read_bytes() == whole_tar.read_bytes()
    assert len(list(iter_samples(split_tar.open("rb")))) == 1


@needs_netns
def test_worker_and_node_killed_mid_job_to_s3(cluster, videos, s3_endpoint):
    """Runs last: it kills the second node for good. Output goes to S3, written by both nodes."""
    import boto3

    boto3.client(
        "s3",
        endpoint_url=s3_endpoint["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="cluster")
    out = "s3://cluster/out"
    # 128 px: a task takes a few seconds, so the kill lands inside one, never between two
    driver = subprocess.Popen(
        extract_cmd(cluster, videos, out, "--size", "128"),
        env=cluster.env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # 1. A worker process dies mid-task: Ray retries its task.
        pid = wait_for(lambda: running_task_pid(cluster.worker_group), "a task running on the second node")
        time.sleep(0.5)  # let the task report its start, so the retry is counted
        os.kill(pid, signal.SIGKILL)
        # 2. Then the whole node dies (raylet, object store, workers): its tasks move to the head.
        second = wait_for(
            lambda: (p := running_task_pid(cluster.worker_group)) != pid and p, "a second task on the second node"
        )
        assert second != pid
        stop_node(cluster.worker_group)
        assert not node_processes(cluster.worker_group)
        stdout, stderr = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, stdout + stderr[-3000:]
    report = check_output(out, cluster.env, expected_ok=VIDEOS)["report"]
    assert report["retried_tasks"] >= 1 and report["failed"] == 0


def test_progress_board_counts_retries_and_ignores_dead_attempts():
    """The board's bookkeeping, without Ray: a second start is a retry; a dead attempt's late
    reports are dropped; forgotten (finished) tasks leave it."""
    from flowprep.executors.ray import ProgressBoard

    board = ProgressBoard()
    assert board.started("train-00000.parquet", "a1") == []
    board.video_done("train-00000.parquet", "a1", frames=10, failed=False)
    assert board.started("train-00000.parquet", "a2") == [1]  # a1's worker died on its second video
    board.video_done("train-00000.parquet", "a1", frames=99, failed=True)  # late, from the dead attempt
    board.video_done("train-00000.parquet", "a2", frames=7, failed=True)
    board.started("test-00000.parquet", "b1")
    snapshot = board.snapshot()
    assert snapshot["retries"] == 1
    assert snapshot["running"]["train-00000.parquet"] == {"attempt": "a2", "videos": 1, "frames": 7, "failed": 1}
    board.forget(["train-00000.parquet"])
    assert list(board.snapshot()["running"]) == ["test-00000.parquet"]
