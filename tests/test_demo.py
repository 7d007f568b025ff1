"""The CPU demo end to end (training/demo.py): extract `sample`, train teacher / baseline / student, evaluate.

On `sample` the class is the drift direction, so motion is the only cue. The demo runs once per module
(about 2-3 minutes on 2 CPU cores) and the tests read its results and outputs.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from training.demo import STREAMS, run_demo  # noqa: E402

CHANCE = 1 / 4  # four directions, 4 test videos each
# Video top-1 over 16 test videos moves in steps of 1/16. Seeds 0, 1, 2 gave teacher 1.0 and
# baseline 0.44 / 0.50 / 0.31, so a 6-video margin holds with room to spare.
MARGIN = 6 / 16


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(str(out))


def epoch_lines(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "epoch"]


@pytest.mark.slow
def test_flow_teacher_clearly_beats_the_rgb_baseline(demo):
    _, result = demo
    teacher, baseline = result["results"]["teacher"], result["results"]["baseline"]
    assert teacher["num_videos"] == baseline["num_videos"] == 16
    assert teacher["video_top1"] >= baseline["video_top1"] + MARGIN, result["table"]
    assert teacher["video_top1"] >= CHANCE + 2 * MARGIN, result["table"]


@pytest.mark.slow
def test_student_imitates_the_frozen_teacher(demo):
    out, result = demo
    student = epoch_lines(out / "student")
    assert len(student) >= 2
    # The feature term compares the student with the teacher's features: it shrinks as the student learns them.
    assert student[-1]["train_feat_mse"] < student[0]["train_feat_mse"]
    config = json.loads((out / "student" / "config.json").read_text())
    assert config["mode"] == "student" and config["teacher"] == str(out / "teacher" / "last.pt")


@pytest.mark.slow
def test_printed_table_is_what_evaluate_wrote(demo):
    out, result = demo
    rows = result["table"].strip().splitlines()[2:]
    assert len(rows) == len(STREAMS)
    for row, (run, *_) in zip(rows, STREAMS):
        written = json.loads((out / run / "eval" / "results.json").read_text())
        assert row.endswith(f"| {written['clip_top1']:.3f} | {written['video_top1']:.3f} |")
        assert (out / run / "eval" / "confusion.png").stat().st_size > 0
        assert (out / run / "curves.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="at the demo's CPU budget the MARS student is within noise of the RGB "
                                        "baseline (video top-1, seeds 0/1/2: 0.31 vs 0.44, 0.44 vs 0.50, "
                                        "0.62 vs 0.31); see docs/training.md")
def test_distilled_student_beats_the_rgb_baseline(demo):
    _, result = demo
    student, baseline = result["results"]["student"], result["results"]["baseline"]
    assert student["video_top1"] >= baseline["video_top1"] + 3 / 16, result["table"]
