"""The staples of large runs (training.schedule / accel / monitor and their TrainConfig flags), on CPU with
`resnet3d_tiny`, including a run killed with SIGKILL mid-epoch that resumes to the same weights."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from tests.tiny_shards import CLASSES, tiny_train_args, write_tiny_shards  # noqa: E402
from training.accel import prepare_network  # noqa: E402
from training.cli import main  # noqa: E402
from training.monitor import RunMonitor  # noqa: E402
from training.schedule import param_groups, scaled_lr, smooth_targets, warmed_up, warmup_factor  # noqa: E402

COMMON = tiny_train_args(2, 3, "--val-fraction", "0", "--lr-schedule", "constant", "--lr", "0.05", "--log-every", "1")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    write_tiny_shards(folder, num_shards=2, videos_per_shard=4, num_frames=6, size=16)
    return folder


def weights(out: Path) -> dict:
    return torch.load(out / "last.pt", map_location="cpu", weights_only=False)["model"]


def epoch_lines(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "epoch"]


def test_linear_scaling_and_warmup_set_the_step_size():
    assert scaled_lr(0.1, 32, 8, 256) == pytest.approx(0.1) and scaled_lr(0.1, 64, 8, 256) == pytest.approx(0.2)
    assert scaled_lr(0.1, 64, 8, 0) == 0.1
    assert [warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=1.0)
    for step, want in enumerate([-0.5, -1.5, -2.5]):  # grad 1: updates of 0.5, 1.0, 1.0 x lr
        w.grad = torch.ones(1)
        with warmed_up(opt, step, 2):
            opt.step()
        assert (
            float(w.detach()) == pytest.approx(want) and opt.param_groups[0]["lr"] == 1.0
        )  # the schedule's lr put back


def test_norms_and_biases_get_no_weight_decay():
    model = nn.Sequential(nn.Conv3d(2, 3, 1), nn.BatchNorm3d(3))
    for exclude in (False, True):
        groups = param_groups(model, 0.5, exclude)
        opt = torch.optim.SGD(groups, lr=1.0)
        before = [p.detach().clone() for p in model.parameters()]
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()  # zero gradient: only weight decay moves a parameter
        moved = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
        # conv weight, conv bias, BN weight (ones), BN bias (zeros: decay cannot move it)
        assert moved == ([True, True, True, False] if not exclude else [True, False, False, False])


def test_label_smoothing_targets_equal_torch_label_smoothing():
    logits, target = torch.randn(5, 4), torch.tensor([0, 3, 1, 1, 2])
    soft = smooth_targets(target, 4, 0.1)
    assert torch.allclose(soft.sum(1), torch.ones(5)) and float(soft[0, 0]) == pytest.approx(0.925)
    want = nn.functional.cross_entropy(logits, target, label_smoothing=0.1)
    assert torch.allclose(nn.functional.cross_entropy(logits, soft), want)


def test_sync_bn_channels_last_and_compile_keep_the_network_s_outputs():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.BatchNorm3d(4)).eval()
    x = torch.randn(2, 2, 3, 5, 5)
    want = net(x)
    assert prepare_network(net, 1, True, False, "") is net  # one process: no SyncBatchNorm
    synced = prepare_network(net, 2, True, False, "")
    assert isinstance(synced[1], nn.SyncBatchNorm) and torch.allclose(synced.eval()(x), want, atol=1e-6)
    fast = prepare_network(synced, 1, False, True, "eager")
    assert synced[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.allclose(fast(x.contiguous(memory_format=torch.channels_last_3d)), want, atol=1e-5)


def test_progress_line_and_tensorboard_missing_is_one_line(tmp_path, caplog):
    stream = io.StringIO()
    with caplog.at_level(logging.WARNING):
        monitor = RunMonitor(0, 0, True, tmp_path / "tb", expected_steps=10, stream=stream, interval_s=0.0)
    tensorboard_missing = monitor.tb is None
    if tensorboard_missing:
        assert len(caplog.records) == 1 and "tensorboard" in caplog.records[0].getMessage()
    monitor.start_epoch(2, save=lambda _: None)
    for step in range(1, 5):
        monitor.on_step(step, seen=step * 8, progress=dict)
    line = stream.getvalue().splitlines()[-1]  # not a terminal: one line per report
    assert line.startswith("epoch 2 step 4 (4/10 this epoch)") and "clips/s" in line and "ETA" in line
    monitor.end_epoch({"epoch": 2, "train_loss": 1.0})
    monitor.close()
    if not tensorboard_missing:
        assert any((tmp_path / "tb").iterdir())


def test_multistep_schedule_and_flags_reach_the_run(data, tmp_path):
    out = tmp_path / "run"
    main(
        [
            "baseline",
            "--data",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "3",
            "--max-steps",
            "2",
            *COMMON,
            "--lr-schedule",
            "multistep",
            "--lr-milestones",
            "1,2",
            "--lr-factor",
            "0.5",
            "--warmup-steps",
            "3",
            "--no-decay-norm-bias",
            "--label-smoothing",
            "0.1",
            "--channels-last",
            "--lr-base-batch",
            "4",
            "--clips-per-video",
            "2",
            "--no-progress",
        ]
    )
    lrs = [round(r["lr"], 6) for r in epoch_lines(out)]
    assert lrs == [0.025, 0.0125, 0.00625]  # 0.05 x batch 2 / base 4 (scaling), then x0.5 at epochs 1 and 2
    saved = json.loads((out / "config.json").read_text())
    assert saved["label_smoothing"] == 0.1 and saved["clips_per_video"] == 2 and saved["lr_milestones"] == [1, 2]
    with pytest.raises(ValueError, match="lr-milestones"):
        main(["baseline", "--data", str(data), "--out", str(tmp_path / "x"), *COMMON, "--lr-schedule", "multistep"])


def test_channels_last_computes_the_same_outputs_and_gradients():
    """A memory layout, not a different net: the same weights give the same logits and gradients up to float
    summation order. (Weights after whole CLI runs are not compared: a ReLU whose input rounds to either side
    of 0 switches a channel's gradient on or off, so one step can differ by far more than the rounding.)
    The CLI flag itself runs in test_multistep_schedule_and_flags_reach_the_run."""
    from training.models import create_model

    x = torch.randn(4, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1, 2, 3]) % len(CLASSES)
    results = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = create_model("resnet3d_tiny", num_classes=len(CLASSES))
        net = prepare_network(model, 1, False, channels_last, "")
        inp = x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x
        logits = net(inp)
        nn.functional.cross_entropy(logits, target).backward()
        results.append((logits.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}))
    (plain, grads_plain), (last, grads_last) = results
    assert any(
        p.is_contiguous(memory_format=torch.channels_last_3d) and p.dim() == 5 and p.shape[1] > 1
        for p in model.parameters()
    )  # the layout really changed
    assert torch.allclose(plain, last, rtol=1e-4, atol=1e-5)
    # summation order moves each gradient by ~1e-6 of its norm (conv1's: 4.5e-5 on entries up to 6.4)
    assert all(
        float((grads_plain[k] - grads_last[k]).norm()) <= 1e-4 * float(grads_plain[k].norm()) + 1e-7
        for k in grads_plain
    )


KILLER = """
import os, signal, sys
from training import checkpoint
from training.cli import main
saves = []
real = checkpoint.save_atomic
def save_then_die(state, path):
    real(state, path)
    saves.append(state.get("progress"))
    if len([s for s in saves if s]) == 2:  # the second mid-epoch checkpoint is on disk: die, no clean-up
        os.kill(os.getpid(), signal.SIGKILL)
checkpoint.save_atomic = save_then_die
main(sys.argv[1:])
"""


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_run(data, tmp_path):
    args = ["baseline", "--data", str(data), "--epochs", "2", "--checkpoint-every", "3", "--no-progress", *COMMON]
    straight = tmp_path / "straight"
    main([*args, "--out", str(straight)])
    killed = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, *args, "--out", str(killed)],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": "."},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ckpt = torch.load(killed / "last.pt", map_location="cpu", weights_only=False)
    # 4 steps an epoch: saved at step 3 (epoch 0) and step 6, the 2nd batch of epoch 1, then killed
    assert ckpt["progress"]["batches"] == 2 and ckpt["step"] == 6 and ckpt["epoch"] == 1
    main([*args, "--out", str(killed)])  # resumes from last.pt, mid-epoch
    want, got = weights(straight), weights(killed)
    assert all(torch.equal(want[k], got[k]) for k in want)
    drop = ("seconds", "clips_per_second")
    assert [{k: v for k, v in r.items() if k not in drop} for r in epoch_lines(straight)][-1] == [
        {k: v for k, v in r.items() if k not in drop} for r in epoch_lines(killed)
    ][-1]
