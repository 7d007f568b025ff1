"""Object storage end to end, against a real S3-compatible server (moto) on loopback, not a mocked client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.cluster
pytest.importorskip("moto.server", reason="moto[server] is not installed")
pytest.importorskip("s3fs", reason="s3fs is not installed")

BUCKET = "flowprep-test"
# --plan count: these tests count tasks of --videos-per-task videos (the work plan is tested in test_plan.py)
TINY = ["--size", "32", "--max-frames", "4", "--executor", "inline", "--no-progress", "--plan", "count"]


@pytest.fixture(scope="module")
def s3_server():
    """A moto S3 server on a free loopback port, with the AWS_* variables pointing at it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.delenv("AWS_PROFILE", raising=False)
        import boto3

        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client
    server.stop()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """8 tiny class-per-folder videos (4 classes), made by the `sample` generator."""
    from flowprep.datasets.sample import generate

    root = tmp_path_factory.mktemp("videos")
    generate(root, videos_per_class=2, frames=6, size_px=32)
    return root


def keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def extract(*args: str):
    from flowprep.cli import main

    return CliRunner().invoke(main, ["extract", *args, *TINY], catch_exceptions=False)


def test_extract_to_s3_verifies_and_streams_with_webdataset(s3_server, videos):
    import importlib

    import webdataset as wds

    gopen = importlib.import_module("webdataset.gopen")  # the module (the package exports a function of that name)
    from flowprep.cli import main
    from flowprep.storage import filesystem

    out = f"s3://{BUCKET}/run1"
    result = extract("--dataset", "folder", "--root", str(videos), "--out", out, "--videos-per-task", "3")
    assert result.exit_code == 0, result.output
    report = json.loads(s3_server.get_object(Bucket=BUCKET, Key="run1/report.json")["Body"].read())
    assert (report["videos"], report["ok"], report["failed"]) == (8, 8, 0)

    names = keys(s3_server, "run1/")
    assert not [n for n in names if ".tmp-" in n], "temporary objects left behind"
    shards = sorted(n for n in names if n.endswith(".tar"))
    assert len(shards) == 3  # 8 videos, 3 per task, one partition
    listed = s3_server.get_object(Bucket=BUCKET, Key="run1/all.shards.txt")["Body"].read().decode().split()
    assert sorted(f"run1/{n}" for n in listed) == shards

    verified = CliRunner().invoke(main, ["verify", out])
    assert verified.exit_code == 0, verified.output

    # Stock WebDataset, its only extension being an fsspec opener for s3:// (as a training job would add).
    def gopen_fsspec(url, mode="rb", bufsize=8192, **kw):
        fs, path = filesystem(url)
        return fs.open(path, mode)

    gopen.gopen_schemes["s3"] = gopen_fsspec
    try:
        samples = list(wds.WebDataset([f"s3://{BUCKET}/{n}" for n in shards], shardshuffle=False))
    finally:
        del gopen.gopen_schemes["s3"]
    assert len(samples) == 8
    assert {s["__key__"].split("/")[0] for s in samples} == {"drift_right", "drift_left", "drift_down", "drift_up"}
    for sample in samples:
        meta = json.loads(sample["json"])
        assert meta["num_frames"] == 4 and "rgb.000003.jpg" in sample and "flow_x.000002.jpg" in sample


def test_resume_on_s3_redoes_only_the_missing_task(s3_server, videos):
    """A task whose part is gone (never published) runs again; the others are skipped. The object
    is deleted through another client, so a cached listing in the driver would hide it."""
    out = f"s3://{BUCKET}/run2"
    first = extract("--dataset", "folder", "--root", str(videos), "--out", out, "--videos-per-task", "2")
    assert first.exit_code == 0, first.output
    parts = sorted(n for n in keys(s3_server, "run2/_parts/"))
    assert len(parts) == 4
    s3_server.delete_object(Bucket=BUCKET, Key=parts[1])

    second = extract("--dataset", "folder", "--root", str(videos), "--out", out, "--videos-per-task", "2")
    assert second.exit_code == 0, second.output
    report = json.loads(s3_server.get_object(Bucket=BUCKET, Key="run2/report.json")["Body"].read())
    assert report["resumed_tasks"] == 3 and report["ok"] == 8

    from flowprep.manifest import table_from_parquet_bytes

    manifest = table_from_parquet_bytes(
        s3_server.get_object(Bucket=BUCKET, Key="run2/manifest.parquet")["Body"].read(), "run2/manifest.parquet"
    )
    assert sorted(manifest.column("key").to_pylist()) == sorted(set(manifest.column("key").to_pylist()))


def test_worker_reads_videos_from_s3_root(s3_server, videos, tmp_path):
    """A task given an s3:// root streams each video from the bucket (the worker side of --root s3://)."""
    import dataclasses

    from flowprep.config import ExtractConfig
    from flowprep.datasets import load_catalog
    from flowprep.plan import make_tasks, select
    from flowprep.task import run_task

    for path in sorted(videos.glob("*/*.avi")):
        s3_server.upload_file(str(path), BUCKET, f"videos/{path.parent.name}/{path.name}")
    s3_server.put_object(Bucket=BUCKET, Key="videos/drift_up/broken.avi", Body=b"not a video")
    local = ExtractConfig(
        dataset="folder",
        root=str(videos),
        out=str(tmp_path / "out"),
        size_px=32,
        max_frames=4,
        executor="inline",
        videos_per_task=16,
    )
    catalog = load_catalog("folder", str(videos), None)
    broken = dataclasses.replace(catalog.items[0], video_id="broken", rel_path="drift_up/broken.avi")
    catalog = dataclasses.replace(catalog, items=catalog.items + (broken,))
    cfg = dataclasses.replace(local, root=f"s3://{BUCKET}/videos")
    (task,) = make_tasks(select(catalog, cfg)[0], cfg)

    (tmp_path / "out").mkdir()
    rows = []
    summary = run_task(task, cfg, on_video=rows.append)
    assert (summary["videos"], summary["ok"], summary["failed"]) == (9, 8, 1)
    (bad,) = [r for r in rows if r["status"] == "failed"]
    assert bad["source"] == "drift_up/broken.avi" and "broken.avi" in bad["error"]
    assert all(r["frames"] == 4 for r in rows if r["status"] == "ok")


def test_atomic_publication_on_s3_leaves_nothing_on_error(s3_server):
    from flowprep.storage import atomic_open, filesystem, write_bytes_atomic

    fs, base = filesystem(f"s3://{BUCKET}/atomic")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_open(fs, f"{base}/a.bin") as f:
            f.write(b"half")
            raise RuntimeError("interrupted")
    assert keys(s3_server, "atomic/") == []
    write_bytes_atomic(fs, f"{base}/a.bin", b"whole")
    assert keys(s3_server, "atomic/") == ["atomic/a.bin"]
    assert fs.cat(f"{base}/a.bin") == b"whole"


def upload_tree(client, local, prefix: str) -> str:
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(local).as_posix()}")
    return f"s3://{BUCKET}/{prefix}"


@pytest.mark.parametrize("name", ["ucf101", "hmdb51", "kinetics400", "folder"])
def test_catalog_of_an_s3_root_equals_the_local_one(s3_server, tmp_path, name):
    """--root (and --annotations) as s3:// URLs: the same videos, labels, splits and problems as on disk."""
    from flowprep.datasets import load_catalog
    from tests.test_datasets import TREES

    root, annotations = TREES[name][0](tmp_path)
    local = load_catalog(name, root, annotations)
    root_url = upload_tree(s3_server, Path(root), f"catalogs/{name}/root")
    ann_url = upload_tree(s3_server, Path(annotations), f"catalogs/{name}/ann") if annotations else None
    remote = load_catalog(name, root_url, ann_url)
    assert remote.root == root_url
    assert (remote.classes, remote.items) == (local.classes, local.items)


def test_extract_from_an_s3_root(s3_server, videos, tmp_path):
    """`--root s3://...`: the catalog is listed from the bucket and every video streamed from it."""
    from flowprep.cli import main

    root = upload_tree(s3_server, videos, "src/videos")
    out = tmp_path / "out"
    result = extract("--dataset", "folder", "--root", root, "--out", str(out), "--videos-per-task", "8")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert (report["videos"], report["ok"], report["failed"]) == (8, 8, 0)
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0
