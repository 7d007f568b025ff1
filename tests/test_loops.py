"""Training / evaluation / fusion loops on tiny shards with `resnet3d_tiny`, through `main(argv)`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.tiny_shards import CLASSES, tiny_train_args, write_tiny_shards  # noqa: E402
from training import checkpoint  # noqa: E402
from training.cli import main  # noqa: E402
from training.metrics import score_metrics  # noqa: E402
from training.precise_bn import recompute_batchnorm  # noqa: E402

NO_VALIDATION = ["--val-fraction", "0", "--lr-schedule", "constant"]  # no held-out videos, no plateau

COMMON = tiny_train_args(3, 3)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    write_tiny_shards(folder, num_shards=3, videos_per_shard=4, num_frames=6, size=16, test_every=4)
    return folder


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("teacher")
    main(
        [
            "teacher",
            "--data",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--lr",
            "0.05",
            "--val-partitions",
            "train",
            "--val-on-test",
            *COMMON,
        ]
    )
    return out


def step_lines(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "step"]


def test_teacher_run_writes_checkpoints_metrics_and_curves(teacher):
    epochs = [r for r in map(json.loads, (teacher / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1]
    assert all(r["train_clips"] == 9 and r["val_clips"] == 3 for r in epochs)  # 12 videos, every 4th is test
    ckpt = torch.load(teacher / "last.pt", weights_only=False)
    assert ckpt["epoch"] == 2 and ckpt["step"] == 2 * 3  # 9 train videos / 3 per batch
    assert ckpt["model"]["conv1.weight"].shape[1] == 2  # flow: x and y channels
    assert json.loads((teacher / "config.json").read_text())["mode"] == "teacher"
    assert (teacher / "curves.png").stat().st_size > 0 and (teacher / "best.pt").is_file()


def test_resume_takes_the_same_next_step(data, tmp_path):
    args = ["baseline", "--data", str(data), "--log-every", "1", "--lr-schedule", "plateau", *COMMON]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    main([*args, "--out", str(straight), "--epochs", "2"])
    main([*args, "--out", str(resumed), "--epochs", "1"])
    main([*args, "--out", str(resumed), "--epochs", "2"])  # picks up resumed/last.pt
    a, b = step_lines(straight), step_lines(resumed)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]  # nothing repeated, nothing skipped
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    wa = torch.load(straight / "last.pt", weights_only=False)["model"]
    wb = torch.load(resumed / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    fresh = tmp_path / "fresh"  # the check has teeth: a different seed gives other losses
    main([*args, "--out", str(fresh), "--epochs", "1", "--seed", "4"])
    assert [r["loss"] for r in step_lines(fresh)] != [r["loss"] for r in a[:3]]


def test_student_keeps_the_teacher_frozen(data, teacher, tmp_path, monkeypatch):
    held = {}
    real_load = checkpoint.load_trained

    def spy(path, device):
        model, cfg, ckpt = real_load(path, device)
        held["model"], held["before"] = model, {k: v.clone() for k, v in model.state_dict().items()}
        return model, cfg, ckpt

    monkeypatch.setattr(checkpoint, "load_trained", spy)
    out = tmp_path / "student"
    main(
        [
            "student",
            "--data",
            str(data),
            "--out",
            str(out),
            "--teacher",
            str(teacher / "last.pt"),
            "--epochs",
            "1",
            *NO_VALIDATION,
            "--log-every",
            "1",
            "--lr",
            "0.05",
            *COMMON,
        ]
    )
    t = held["model"]
    assert not t.training
    assert all(not p.requires_grad and p.grad is None for p in t.parameters())
    after = t.state_dict()  # includes BN running stats, which a train-mode forward would move
    assert all(torch.equal(held["before"][k], after[k]) for k in after)
    lines = step_lines(out)
    assert lines and all(r["feat_mse"] > 0 for r in lines)  # the teacher's features reached the loss
    student = torch.load(out / "last.pt", weights_only=False)["model"]
    assert student["conv1.weight"].shape[1] == 3


def test_evaluate_video_scores_match_results(data, teacher, tmp_path):
    out = tmp_path / "eval"
    results = main(
        [
            "evaluate",
            "--data",
            str(data),
            "--checkpoint",
            str(teacher / "last.pt"),
            "--out",
            str(out),
            "--test-clips",
            "2",
            "--test-crops",
            "5",
            "--partitions",
            "train",
            *COMMON[2:],
        ]
    )
    assert results["num_videos"] == 3 and results["num_clips"] == 3 * 2 * 5
    scores = torch.load(out / "scores.pt")
    labels = torch.tensor([CLASSES.index(k.split("/")[0]) for k in scores["keys"]])
    assert results["video_top1"] == pytest.approx(float((scores["probs"].argmax(1) == labels).float().mean()))
    assert sum(map(sum, results["confusion"])) == 3
    assert (out / "confusion.png").stat().st_size > 0


def test_score_metrics_by_hand():
    keys = ["a", "a", "b", "c"]
    labels = torch.tensor([0, 0, 1, 2])
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.5, 0.1, 0.4]]))
    m = score_metrics(keys, labels, logits, 3)
    assert m["clip_top1"] == pytest.approx(2 / 4)  # clips 0 and 2
    assert m["video_top1"] == pytest.approx(1 / 3)  # a: mean (0.4, 0.5, 0.1) -> 1, wrong; b right; c -> 0, wrong
    assert m["num_videos"] == 3 and m["clip_top5"] == 1.0
    assert m["confusion"] == [[0, 1, 0], [0, 1, 0], [1, 0, 0]]


@pytest.mark.parametrize("method", ["average", "attention"])
def test_fuse_two_streams(data, teacher, tmp_path, method):
    rgb = tmp_path / "rgb"
    main(["baseline", "--data", str(data), "--out", str(rgb), "--epochs", "1", *NO_VALIDATION, *COMMON])
    solo = main(
        [
            "evaluate",
            "--data",
            str(data),
            "--checkpoint",
            str(teacher / "last.pt"),
            "--out",
            str(tmp_path / "solo"),
            "--test-clips",
            "2",
            "--partitions",
            "train",
            *COMMON[2:],
        ]
    )
    fused = main(
        [
            "fuse",
            "--data",
            str(data),
            "--checkpoint-a",
            str(rgb / "last.pt"),
            "--checkpoint-b",
            str(teacher / "last.pt"),
            "--method",
            method,
            "--epochs",
            "2",
            "--out",
            str(tmp_path / "fused"),
            "--test-clips",
            "2",
            "--partitions",
            "train",
            *COMMON[2:],
        ]
    )
    assert fused["stream_b"]["video_top1"] == solo["video_top1"]  # stream b is the flow teacher, fed flow
    assert fused["num_videos"] == 3
    assert (tmp_path / "fused" / "fusion.pt").is_file() == (method == "attention")


def test_clip_grad_norm_bounds_the_first_update(data, tmp_path):
    """SGD without momentum or decay moves the weights by lr x the clipped gradient: its norm is the bound."""
    bound = 1e-3
    main(
        [
            "baseline",
            "--data",
            str(data),
            "--out",
            str(tmp_path),
            *NO_VALIDATION,
            "--epochs",
            "1",
            "--max-steps",
            "1",
            "--log-every",
            "1",
            "--lr",
            "1",
            "--momentum",
            "0",
            "--weight-decay",
            "0",
            "--clip-grad-norm",
            str(bound),
            *COMMON,
        ]
    )
    checkpoint.seed_everything(3)  # the run's seed: the same initial weights
    initial = dict(checkpoint.build_model("resnet3d_tiny", len(CLASSES), 3).named_parameters())
    trained = torch.load(tmp_path / "last.pt", weights_only=False)["model"]
    update = torch.sqrt(sum(((trained[k] - w.detach()) ** 2).sum() for k, w in initial.items()))
    (line,) = step_lines(tmp_path)
    assert line["grad_norm"] > 10 * bound  # the raw gradient, logged: clipping was active
    assert float(update) == pytest.approx(bound, rel=1e-3)
    with pytest.raises(ValueError, match="--clip-grad-norm -1"):
        main(["baseline", "--data", str(data), "--out", str(tmp_path), "--clip-grad-norm", "-1", *COMMON])


def test_bad_flags_fail_naming_the_value(data, tmp_path):
    with pytest.raises(ValueError, match="--teacher"):
        main(["student", "--data", str(data), "--out", str(tmp_path), *COMMON])
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        main(["baseline", "--data", str(data), "--out", str(tmp_path), *COMMON, "--model", "nope"])


def test_precise_bn_sets_running_stats_to_the_average_over_the_batches():
    """recompute_batchnorm: running mean/var = the plain average of the per-batch statistics."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 1), torch.nn.BatchNorm3d(4))
    batches = [{"rgb": torch.randn(2, 3, 2, 4, 4) * (i + 1) + i} for i in range(3)]
    model[1].running_mean.fill_(100.0)  # stale statistics that must not survive
    recompute_batchnorm(model, batches, "rgb", torch.device("cpu"), "fp32", batches=3)
    with torch.no_grad():
        acts = [model[0](b["rgb"]).transpose(0, 1).flatten(1) for b in batches]  # (C, N*T*H*W) per batch
    expected_mean = torch.stack([a.mean(1) for a in acts]).mean(0)
    expected_var = torch.stack([a.var(1, unbiased=True) for a in acts]).mean(0)
    assert torch.allclose(model[1].running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(model[1].running_var, expected_var, atol=1e-4)
    assert model[1].momentum == 0.1  # restored


def test_model_args_reach_the_model_and_its_checkpoint(tmp_path):
    """--model-args: the ACTION ablation from the CLI (one path), kept through save / evaluate."""
    from training.models import create_model

    data = tmp_path / "shards"
    write_tiny_shards(data, num_shards=2, videos_per_shard=4, num_frames=8, size=16, test_every=4)
    common = [
        "--data",
        str(data),
        "--num-classes",
        str(len(CLASSES)),
        "--frames",
        "4",
        "--crop-size",
        "16",
        "--batch-size",
        "3",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    main(
        [
            "baseline",
            *common,
            "--model",
            "action_tiny",
            "--model-args",
            '{"paths": ["me"]}',
            "--epochs",
            "1",
            "--max-steps",
            "1",
            *NO_VALIDATION,
            "--log-every",
            "0",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    saved = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)["model"]
    me_only = create_model("action_tiny", num_classes=len(CLASSES), paths=["me"]).state_dict()
    full = create_model("action_tiny", num_classes=len(CLASSES)).state_dict()
    assert set(saved) == set(me_only) != set(full)
    result = main(
        [
            "evaluate",
            *common,
            "--checkpoint",
            str(tmp_path / "run" / "last.pt"),
            "--partitions",
            "train",
            "--test-clips",
            "1",
            "--out",
            str(tmp_path / "eval"),
        ]
    )
    assert result["num_videos"] == 2
    with pytest.raises(ValueError, match="--model-args"):
        main(["baseline", *common, "--model", "action_tiny", "--model-args", "paths=me", "--out", str(tmp_path / "x")])


def test_an_empty_selection_fails_naming_partitions_and_split(data, teacher, tmp_path):
    # No video is in a 'holdout' half of split 1: training on nothing must stop, not "train" for every
    # epoch and leave a checkpoint that never saw a clip.
    with pytest.raises(ValueError, match=r"no training clips in .*partitions 'train' has splits\['1'\] == 'holdout'"):
        main(
            [
                "baseline",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "run"),
                "--epochs",
                "2",
                "--train-split-name",
                "holdout",
                *NO_VALIDATION,
                *COMMON,
            ]
        )
    assert not (tmp_path / "run" / "last.pt").exists()
    with pytest.raises(ValueError, match=r"no test clips in .*partitions 'train' has splits\['1'\] == 'holdout'"):
        main(
            [
                "evaluate",
                "--data",
                str(data),
                "--checkpoint",
                str(teacher / "last.pt"),
                "--out",
                str(tmp_path / "ev"),
                "--partitions",
                "train",
                "--split-name",
                "holdout",
                "--frames",
                "4",
                "--crop-size",
                "16",
                "--workers",
                "0",
                "--device",
                "cpu",
            ]
        )
