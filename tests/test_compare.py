"""`flowprep-train compare`: several registry models trained and evaluated on the same shards of the embedded
`sample` dataset; the FLOP counter against the papers."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from training.compare import clip_gflops, parse_entries  # noqa: E402
from training.models import create_model  # noqa: E402

NO_VALIDATION = ["--val-fraction", "0", "--lr-schedule", "constant"]  # no held-out videos, no plateau

# The embedded `sample` dataset (4 drift directions), cut to 16 videos of 10 frames at 32 px: a few
# seconds of extraction. Flip off: it would turn drift_left into drift_right.
EXTRACT = [
    "--dataset",
    "sample",
    "--executor",
    "inline",
    "--size",
    "32",
    "--workers",
    "1",
    "--videos-per-task",
    "4",
    "--limit",
    "16",
    "--max-frames",
    "10",
    "--no-progress",
    "--flow-param",
    "nscales=2",
    "--flow-param",
    "warps=1",
]


def test_compare_command_end_to_end_on_sample(tmp_path):
    from flowprep.cli import main as flowprep_main
    from flowprep.manifest import table_from_parquet_bytes
    from training.cli import main as train_main

    data, out = tmp_path / "shards", tmp_path / "cmp"
    try:
        flowprep_main(
            ["extract", *EXTRACT, "--root", str(tmp_path / "videos"), "--out", str(data)], standalone_mode=False
        )
    except SystemExit as stop:  # `flowprep extract` exits with its status even outside standalone mode
        assert stop.code == 0, f"extract of the sample dataset exited with {stop.code}"
    manifest = table_from_parquet_bytes((data / "manifest.parquet").read_bytes(), "manifest.parquet").to_pylist()
    num_test = sum(r["status"] == "ok" and r["partition"] == "test" for r in manifest)
    num_classes = len({r["label"] for r in manifest})
    rows = train_main(
        [
            "compare",
            "--data",
            str(data),
            "--out",
            str(out),
            "--models",
            "tsn_tiny,action_tiny:twins",
            "--frames",
            "4",
            "--crop-size",
            "32",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--no-flip",
            "--epochs",
            "1",
            "--lr",
            "0.01",
            *NO_VALIDATION,
            "--log-every",
            "0",
            "--test-clips",
            "2",
            "--test-crops",
            "3",
            "--speed-batches",
            "1",
        ]
    )
    assert [r["model"] for r in rows] == ["tsn_tiny", "action_tiny:twins"]
    assert [r["mode"] for r in rows] == ["baseline", "twins"]
    for row, name in zip(rows, ("tsn_tiny", "action_tiny")):
        assert row["params"] == sum(p.numel() for p in create_model(name, num_classes=num_classes).parameters())
        assert row["num_videos"] == num_test > 0
        results = json.loads((out / row["model"].replace(":", "-") / "eval" / "results.json").read_text())
        assert results["num_clips"] == num_test * 2 * 3  # 2 clips x 3 crops per test video
        assert 0 <= row["video_top1"] <= 1 and row["clips_per_second"] > 0
    assert rows[1]["gflops"] > rows[0]["gflops"] > 0  # ACTION adds convolutions to TSN
    twins_epoch = json.loads((out / "action_tiny-twins" / "train" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "train_cor" in twins_epoch  # the twins run really used the correlation loss
    table = (out / "compare.md").read_text()
    assert all(f"| {r['model']} | {r['mode']} | {r['params']:,} |" in table for r in rows)
    assert (out / "compare.png").stat().st_size > 0
    assert json.loads((out / "compare.json").read_text()) == json.loads(json.dumps(rows))


def test_bad_entries_name_the_value():
    with pytest.raises(ValueError, match="nosuchnet"):
        parse_entries("tsn_tiny,nosuchnet")
    with pytest.raises(ValueError, match="dreaming"):
        parse_entries("tsn_tiny:dreaming")
    assert parse_entries("tsn_tiny, stm_tiny:twins") == [("tsn_tiny", None), ("stm_tiny", "twins")]


def test_flops_match_the_papers():
    # Multiply-accumulates per 8-segment 224px clip. TSN R50: "32.9G" (STM Table 4) / "33G" (ACTION Table 3);
    # ACTION adds "+1.75G" (ACTION Table 3); STM-50 is "33.3G" vs TSN's "32.9G", i.e. +0.4G (STM Table 4).
    tsn = clip_gflops("tsn_r50", 174, 3, 8, 224)
    assert tsn == pytest.approx(32.9, rel=0.01)
    assert clip_gflops("tsm_r50", 174, 3, 8, 224) == pytest.approx(tsn)  # the shift is free
    assert clip_gflops("action_r50", 174, 3, 8, 224) - tsn == pytest.approx(1.75, rel=0.02)
    assert clip_gflops("stm_r50", 174, 3, 8, 224) - tsn == pytest.approx(0.4, abs=0.05)
