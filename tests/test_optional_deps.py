"""A missing optional dependency is one line naming what to install, and never ends a finished run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_without(modules: list[str], entry: str, *args: str) -> subprocess.CompletedProcess:
    """`entry` ('flowprep.cli' or 'training.cli') in a fresh interpreter where `modules` cannot be imported."""
    code = f"import sys\nfor name in {modules!r}:\n    sys.modules[name] = None\nfrom {entry} import main\nmain()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args",
    [
        ["extract", "--dataset", "folder", "--root", "VIDEOS", "--out", "s3://bucket/shards", "--no-progress"],
        ["extract", "--dataset", "folder", "--root", "s3://bucket/videos", "--out", "OUT", "--no-progress"],
        ["verify", "s3://bucket/shards"],
    ],
)
def test_s3_urls_without_s3fs_say_which_extra_to_install(args, tmp_path):
    (tmp_path / "videos" / "a").mkdir(parents=True)
    args = [a.replace("VIDEOS", str(tmp_path / "videos")).replace("OUT", str(tmp_path / "out")) for a in args]
    result = run_without(["s3fs"], "flowprep.cli", *args)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("Error")]  # extract first echoes its paths
    assert line.startswith("Error: s3://bucket/") and line.endswith("pip install 'flowprep[s3]'")


def test_training_without_torch_says_which_extra_to_install(tmp_path):
    result = run_without(["torch"], "training.cli", "teacher", "--data", str(tmp_path), "--out", str(tmp_path / "run"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        "Error: flowprep-train teacher needs torch, which is not installed: pip install 'flowprep[train]'"
    )


def test_a_training_run_without_matplotlib_finishes_with_its_checkpoints(tmp_path, monkeypatch, caplog):
    pytest.importorskip("torch")
    from tests.test_loops import COMMON
    from tests.tiny_shards import write_tiny_shards
    from training.cli import main

    data = tmp_path / "shards"
    write_tiny_shards(data, num_shards=1, videos_per_shard=4, num_frames=6, size=16, test_every=4)
    for name in ("matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)  # as if never installed, even if another test imported it
    out = tmp_path / "run"
    metrics = main(
        [
            "teacher",
            "--data",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--val-partitions",
            "train",
            "--val-on-test",
            *COMMON,
        ]
    )
    assert metrics["epoch"] == 1
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file() and (out / "metrics.jsonl").is_file()
    assert not (out / "curves.png").exists()
    assert (
        "plot_curves not drawn: plotting needs matplotlib, which is not installed: pip install 'flowprep[train]'"
        in caplog.text
    )
