"""Multi-process training on CPU: DDP over gloo, as `torchrun` launches it on GPUs (one process per rank).

torchrun's rendezvous and gloo talk over loopback TCP; under `make test` the suite runs in a private
network namespace, so nothing leaves the machine either way.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.tiny_shards import tiny_train_args, write_tiny_shards  # noqa: E402

COMMON = tiny_train_args(2, 5, "--log-every", "0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _average_worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    from training.distributed import average_over_ranks

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        values = [torch.full((3,), float(rank + 1)), torch.arange(2, dtype=torch.float32) * (rank + 1)]
        average_over_ranks(values)
        torch.save(values, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_average_over_ranks_gives_every_rank_the_mean(tmp_path):
    world = 2
    torch.multiprocessing.spawn(_average_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world)
    for rank in range(world):
        full, ramp = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.equal(full, torch.full((3,), 1.5))  # (1 + 2) / 2
        assert torch.equal(ramp, torch.tensor([0.0, 1.5]))  # ([0, 1] + [0, 2]) / 2


def torchrun(args: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", **(env_extra or {})}
    port = free_port()
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "1",
            "--nproc-per-node",
            "2",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(port),
            "-m",
            "training.cli",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_torchrun_two_ranks_train_each_video_once_and_evaluate_all(tmp_path):
    data = tmp_path / "shards"
    # 4 shards of 4 videos, the first of each in split-1 'test': each rank gets 2 shards, 6 training videos,
    # 3 full batches (a 1-clip tail would be skipped, as BatchNorm cannot train on it)
    keys = write_tiny_shards(data, num_shards=4, videos_per_shard=4, num_frames=6, size=16, test_every=4)
    num_train = sum(1 for v in range(len(keys)) if v % 4 != 0)  # 12
    num_test = len(keys) - num_train  # 4
    out = tmp_path / "run"
    done = torchrun(
        [
            "baseline",
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
            "--precise-bn-batches",
            "2",
            *COMMON,
        ]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    epochs = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "epoch"]
    # Written once (rank 0), with counts summed over both ranks: every video exactly once per epoch.
    assert [r["epoch"] for r in epochs] == [0, 1]
    assert all(r["train_clips"] == num_train and r["val_clips"] == num_test for r in epochs), epochs
    ckpt = torch.load(out / "last.pt", weights_only=False)
    assert ckpt["epoch"] == 2 and not any(k.startswith("module.") for k in ckpt["model"])  # loadable without DDP

    evaluated = torchrun(
        [
            "evaluate",
            "--data",
            str(data),
            "--checkpoint",
            str(out / "last.pt"),
            "--out",
            str(tmp_path / "eval"),
            "--partitions",
            "train",
            "--split-name",
            "test",
            "--frames",
            "4",
            "--crop-size",
            "16",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--test-clips",
            "2",
        ]
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["num_videos"] == num_test and results["num_clips"] == 2 * num_test  # gathered from both ranks
