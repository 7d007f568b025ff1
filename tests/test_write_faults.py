"""Faults while writing: a full disk and an object store answering 500 / 503.

Either way the task fails or retries, nothing half-written is published, and running the same
command again ends with every video exactly once and `flowprep verify` passing.
"""

from __future__ import annotations

import errno
import io
import tarfile
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowprep import format as fmt
from flowprep.cli import EXIT_ERROR, EXIT_OK, main
from flowprep.manifest import read_manifest
from flowprep.storage import filesystem
from tests.test_extract import FAST_FLOW

SETTINGS = ["--size", "16", "--videos-per-task", "2", "--threads-per-worker", "1", "--no-progress", *FAST_FLOW]
TINY = ["--executor", "inline", *SETTINGS]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """6 tiny videos in 2 classes: 3 tasks of 2 videos."""
    from flowprep.datasets.sample import write_avi
    from tests.conftest import moving_square_video

    root = tmp_path_factory.mktemp("videos")
    for i in range(6):
        path = root / f"c{i % 2}" / f"v{i}.avi"
        path.parent.mkdir(exist_ok=True)
        write_avi(path, moving_square_video(frames=5, size_px=32, seed=i))
    return root


def assert_every_video_once(fs, out: str, videos: Path) -> None:
    rows = read_manifest(fs, out)
    assert sorted(r["source"] for r in rows) == sorted(p.relative_to(videos).as_posix() for p in videos.glob("*/*.avi"))
    assert all(r["status"] == "ok" for r in rows)
    keys = []
    for shard in sorted(p for p in fs.ls(out, detail=False) if p.endswith(".tar")):
        keys += [k for k, _ in tar_samples(fs.cat(shard))]
    assert sorted(keys) == sorted(r["key"] for r in rows), "each video in exactly one shard, once"
    assert not [p for p in fs.find(out) if fmt.PARTS_DIR not in p and ".tmp-" in p]


def tar_samples(data: bytes) -> list[tuple[str, int]]:
    """(key, members) of each sample of a whole tar; raises on a partial one."""
    counts: dict[str, int] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar.getmembers():
            key = member.name.split(".", 1)[0]
            counts[key] = counts.get(key, 0) + 1
            assert len(tar.extractfile(member).read()) == member.size
    return list(counts.items())


def assert_nothing_half_written(fs, out: str) -> None:
    """Every file left is complete: no temporaries, every shard a whole tar of whole samples."""
    names = fs.find(out)
    assert not [p for p in names if ".tmp-" in p], "a temporary file survived the failure"
    for shard in (p for p in names if p.endswith(".tar")):
        for key, members in tar_samples(fs.cat(shard)):
            assert members == 2 + 5 + 2 * 4, (shard, key)  # json, cls, 5 rgb, 4 flow_x, 4 flow_y


# ---- a full disk -------------------------------------------------------------------------------


class FullDisk:
    """Wraps a local fsspec filesystem: every file opened for writing raises OSError(ENOSPC) once
    `budget` bytes have been written in all (the bytes that fit are written, as on a real disk)."""

    def __init__(self, fs, budget: int):
        self._fs, self.budget, self.written = fs, budget, 0

    def __getattr__(self, name):
        return getattr(self._fs, name)

    def open(self, path, mode="rb", **kwargs):
        f = self._fs.open(path, mode, **kwargs)
        if "w" not in mode:
            return f
        disk = self

        class Writer(io.RawIOBase):
            def writable(self):
                return True

            def tell(self):
                return f.tell()

            def write(self, data):
                room = disk.budget - disk.written
                if len(data) > room:
                    f.write(bytes(data[: max(room, 0)]))
                    disk.written = disk.budget
                    raise OSError(errno.ENOSPC, "No space left on device", path)
                disk.written += len(data)
                return f.write(data)

            def close(self):
                if not self.closed:
                    f.close()
                super().close()

        return Writer()


def extract_on_a_small_disk(monkeypatch, out: Path, videos: Path, budget: int | None):
    """`flowprep extract` whose --out holds `budget` bytes (None: unlimited)."""
    import flowprep.shard_job as shard_job  # the driver opens --out through the job skeleton
    import flowprep.task as task  # the workers open --out through task.py

    real = shard_job.filesystem
    disk = None

    def filesystem_with_a_small_disk(url):
        nonlocal disk
        fs, path = real(url)
        if url != str(out) or budget is None:
            return fs, path
        disk = disk or FullDisk(fs, budget)  # one disk for the driver and the task alike
        return disk, path

    for module in (shard_job, task):  # the driver's and the task's storage
        monkeypatch.setattr(module, "filesystem", filesystem_with_a_small_disk)
    try:
        return CliRunner().invoke(
            main, ["extract", "--dataset", "folder", "--root", str(videos), "--out", str(out), *TINY]
        )
    finally:
        for module in (shard_job, task):
            monkeypatch.setattr(module, "filesystem", real)


def total_bytes_written(tmp_path, videos) -> int:
    out = tmp_path / "measure"
    result = CliRunner().invoke(
        main, ["extract", "--dataset", "folder", "--root", str(videos), "--out", str(out), *TINY]
    )
    assert result.exit_code == EXIT_OK, result.output
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


@pytest.mark.parametrize("fraction", [0.15, 0.5, 0.9, 0.99])  # full in task 0, 1, 2, in the manifest
def test_a_full_disk_fails_the_job_publishes_nothing_half_written_and_the_rerun_finishes(
    fraction, tmp_path, videos, monkeypatch
):
    budget = int(total_bytes_written(tmp_path, videos) * fraction)
    out = tmp_path / "out"
    result = extract_on_a_small_disk(monkeypatch, out, videos, budget)
    assert result.exit_code == EXIT_ERROR, result.output
    (line,) = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert "No space left on device" in line and "re-run the same command" in line
    fs, path = filesystem(str(out))
    assert_nothing_half_written(fs, path)

    rerun = extract_on_a_small_disk(monkeypatch, out, videos, budget=None)  # space freed
    assert rerun.exit_code == EXIT_OK, rerun.output
    assert_every_video_once(fs, path, videos)
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == EXIT_OK


# ---- an object store answering 500 / 503 ---------------------------------------------------------

BUCKET = "flowprep-faults"


class FaultyS3:
    """A moto S3 server on loopback whose answers pass through `rule(method, path, headers)`, which
    returns an HTTP status to send instead (500 InternalError, 503 SlowDown) or None."""

    def __init__(self):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        self.rule = lambda method, path, headers: None
        self.injected: list[tuple[int, str, str]] = []
        moto_app = DomainDispatcherApplication(create_backend_app)

        def app(environ, start_response):
            from werkzeug.wsgi import get_input_stream

            headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
            status = self.rule(environ["REQUEST_METHOD"], environ["PATH_INFO"], headers)
            if status is None:
                return moto_app(environ, start_response)
            get_input_stream(environ).read()  # drain the request, as a real server would
            code = {500: "InternalError", 503: "SlowDown"}[status]
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>injected by the test</Message></Error>"
            ).encode()
            self.injected.append((status, environ["REQUEST_METHOD"], environ["PATH_INFO"]))
            start_response(
                f"{status} {code}", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
            )
            return [body]

        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()


@pytest.fixture(scope="module")
def faulty_s3():
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    pytest.importorskip("s3fs", reason="s3fs is not installed")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = FaultyS3()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", server.endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.delenv("AWS_PROFILE", raising=False)
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield server
    server.stop()


def s3_extract(out: str, videos: Path):
    return CliRunner().invoke(main, ["extract", "--dataset", "folder", "--root", str(videos), "--out", out, *TINY])


@pytest.mark.cluster
def test_s3_errors_on_some_requests_are_retried_and_the_job_succeeds(faulty_s3, videos):
    """The first attempt of every write of one task (its shard's upload and publishing copy: 503
    SlowDown; its part's: 500 InternalError) fails: the client's retries absorb them and the job ends
    as if nothing had happened. (One task only: each retry waits out the client's backoff.)"""
    seen: set[tuple] = set()

    def first_attempt_fails(method, path, headers):
        if method != "PUT" or "/all-00001" not in path or not path.startswith(f"/{BUCKET}/retried/"):
            return None
        request = (path, headers.get("x-amz-copy-source"))
        if request in seen:
            return None
        seen.add(request)
        return 503 if ".tar" in path else 500

    faulty_s3.rule = first_attempt_fails
    try:
        result = s3_extract(f"s3://{BUCKET}/retried", videos)
    finally:
        faulty_s3.rule = lambda *a: None
    assert result.exit_code == EXIT_OK, result.output
    statuses = {(status, path.rsplit("/", 1)[-1].split(".tmp-")[0]) for status, _, path in faulty_s3.injected}
    assert statuses == {(503, "all-00001-000.tar"), (500, "all-00001.parquet")}, statuses
    assert len(faulty_s3.injected) == 4  # upload and copy of each
    fs, path = filesystem(f"s3://{BUCKET}/retried")
    assert_every_video_once(fs, path, videos)
    assert CliRunner().invoke(main, ["verify", f"s3://{BUCKET}/retried"]).exit_code == EXIT_OK


@pytest.fixture
def few_client_retries(monkeypatch):
    """botocore tries each request twice (each retry waits out a backoff: CI time), in this process
    and in the Ray workers it starts."""
    import s3fs

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    s3fs.S3FileSystem.clear_instance_cache()  # a cached client would keep its attempts, here and after
    yield
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.cluster
def test_an_s3_outage_for_one_shard_fails_the_job_and_the_rerun_finishes(faulty_s3, videos, few_client_retries):
    """Every write of one task's shard is answered 500: past the retries that task fails, the job exits
    1 naming the error, no object of it is published, and the same command run again completes."""
    out = f"s3://{BUCKET}/outage"

    def shard_down(method, path, headers):
        return 500 if method == "PUT" and path.startswith(f"/{BUCKET}/outage/all-00001-000.tar") else None

    faulty_s3.rule = shard_down
    try:
        result = s3_extract(out, videos)
    finally:
        faulty_s3.rule = lambda *a: None
    assert result.exit_code == EXIT_ERROR, result.output
    assert [ln for ln in result.output.splitlines() if ln.startswith("Error: writing the output failed")]
    fs, path = filesystem(out)
    assert_nothing_half_written(fs, path)
    assert not [p for p in fs.find(path) if "all-00001" in p], "the failed task published nothing"

    rerun = s3_extract(out, videos)
    assert rerun.exit_code == EXIT_OK, rerun.output
    assert_every_video_once(fs, path, videos)
    assert CliRunner().invoke(main, ["verify", out]).exit_code == EXIT_OK


@pytest.mark.cluster
def test_on_ray_a_task_whose_upload_fails_past_the_client_retries_is_retried(faulty_s3, videos, few_client_retries):
    """A Ray task whose shard upload raises (OSError, after botocore's own retries) is run again by Ray
    (`retry_exceptions=[OSError]`): the new attempt starts clean and the job finishes, every video once."""
    import os

    if os.environ.get("FLOWPREP_NETNS") != "1":
        pytest.skip("starts Ray: run through scripts/run_tests.sh (a private network namespace)")
    out = f"s3://{BUCKET}/ray-retried"
    failures = {"left": 2}  # = AWS_MAX_ATTEMPTS: the first attempt of the task fails, the retry succeeds

    def upload_fails_twice(method, path, headers):
        if method == "PUT" and path.startswith(f"/{BUCKET}/ray-retried/all-00001-000.tar.tmp-") and failures["left"]:
            failures["left"] -= 1
            return 500
        return None

    faulty_s3.rule = upload_fails_twice
    try:
        result = CliRunner().invoke(
            main,
            [
                "extract",
                "--dataset",
                "folder",
                "--root",
                str(videos),
                "--out",
                out,
                *SETTINGS,
                "--executor",
                "ray",
                "--workers",
                "1",
            ],
        )
    finally:
        faulty_s3.rule = lambda *a: None
    assert result.exit_code == EXIT_OK, result.output
    assert failures["left"] == 0 and "tasks retried: 1" in result.output
    fs, path = filesystem(out)
    assert_every_video_once(fs, path, videos)
