"""Every registered executor runs the same plan to the same samples (a new executor is tested here as is)."""

from __future__ import annotations

import pytest

from flowprep.config import ExtractConfig
from flowprep.executors import EXECUTORS
from flowprep.runner import run_extract
from tests.test_extract import manifest, read_back

FAST_FLOW = (("nscales", 1), ("warps", 1), ("outer_iterations", 1), ("inner_iterations", 5))
STARTS_RAY = {"ray"}  # a local Ray takes ~10 s to start: the quick loop (-m "not cluster") skips it


def tiny_job(out, name: str) -> ExtractConfig:
    return ExtractConfig(
        dataset="sample",
        root=str(out.parent / "videos"),
        out=str(out),
        executor=name,
        workers=2,
        size_px=32,
        max_frames=4,
        limit=4,
        videos_per_task=2,
        plan="count",
        flow_backend="opencv",
        flow_params=FAST_FLOW,
    )


@pytest.fixture(scope="module")
def inline_samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("inline") / "out"
    run_extract(tiny_job(out, "inline"), show_progress=False)
    return read_back(out)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.cluster) if n in STARTS_RAY else n for n in EXECUTORS if n != "inline"]
)
def test_each_executor_writes_what_the_inline_one_writes(name, inline_samples, tmp_path):
    out = tmp_path / "out"
    summary = run_extract(tiny_job(out, name), show_progress=False)
    assert summary["ok"] == 4 and summary["failed"] == 0 and summary["jobs"] == 2
    assert sum(r["status"] == "ok" for r in manifest(out)) == 4  # the others: skipped by --limit
    samples = read_back(out)
    assert sorted(samples) == sorted(inline_samples)
    for key, sample in samples.items():  # byte for byte: the executor decides where a job runs, not what it writes
        assert {m: v for m, v in sample.items() if m.endswith(".jpg")} == {
            m: v for m, v in inline_samples[key].items() if m.endswith(".jpg")
        }, key
