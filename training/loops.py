"""The loops: `train_one_epoch` (a recipe's step over the training batches) and `validate` (clip-level,
per epoch; the final test is `training.evaluate`), plus `clip_logits`, the test pass shared by evaluation
and fusion. Plain functions, in the shape of torchvision's video references; the run around them is
`training.train.train`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .data import BadSampleTally
from .distributed import all_reduce_sum, autocast
from .metrics import topk_correct
from .normalize import model_input


class Features(nn.Module):
    """Wraps a model so DDP's forward is `forward_features` (DDP only syncs what its forward ran).

    `views > 1`: x holds that many view-major batches, each run through the model on its own, so each
    is its own BatchNorm batch (Twins Training feeds its two distortions as two batches, STM 3.5), in
    one DDP forward; the outputs are concatenated back, view-major."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, views: int = 1) -> dict:
        if views == 1:
            return self.model.forward_features(x)
        outs = [self.model.forward_features(part) for part in x.chunk(views)]
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}


@dataclass
class StepContext:
    """What a recipe's step works with (training.recipes): the network, its loss and where they run."""

    net: nn.Module  # x -> forward_features dict (DDP-wrapped under torchrun)
    loss_fn: Callable[..., dict]
    modality: str  # the recipe's stream input
    device: torch.device
    precision: str
    teacher: nn.Module | None = None  # frozen, for recipes that distil
    generator: torch.Generator | None = None  # a recipe's own random draws (twins' colour jitter), per rank

    channels_last: bool = False  # clips in channels_last_3d, like the model (--channels-last)

    def input(self, batch: dict, key: str) -> torch.Tensor:
        x = model_input(batch, key, self.device)
        return x.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else x

    def autocast(self):
        return autocast(self.device, self.precision)


@dataclass(frozen=True)
class StepSettings:
    """The TrainConfig fields the inner loop reads."""

    batch_size: int
    max_steps: int = 0  # > 0: stop each epoch after this many steps
    clip_grad_norm: float = 0.0
    log_every: int = 0
    warmup_steps: int = 0  # training.schedule.warmed_up
    label_smoothing: float = 0.0  # > 0: the loss gets smoothed probabilities (B,K) as its target
    num_classes: int = 0  # K, for label smoothing


def train_one_epoch(
    step_fn: Callable,
    ctx: StepContext,
    model: nn.Module,
    optimizer,
    scaler,
    loader,
    settings: StepSettings,
    step: int,
    log_step: Callable[[int, dict], None] | None = None,
    resume: dict | None = None,
    on_step: Callable[[int, int, Callable[[], dict]], None] | None = None,
) -> tuple[dict, int]:
    """One pass of `step_fn` (a recipe's step) over `loader`; every loss term it names is summed and
    averaged per clip. Returns (epoch metrics summed over the ranks, steps taken so far).

    `resume` (an `epoch_progress` dict from a mid-epoch checkpoint) skips the batches already trained on
    (they are read, not trained: the loader replays the epoch exactly) and restores the running sums;
    `on_step(step, clips_seen, progress)` runs after every step, where `progress()` builds that dict."""
    from torch.distributed.algorithms.join import Join

    from .schedule import smooth_targets, warmed_up

    device = ctx.device
    resume = resume or {}
    t0 = time.perf_counter() - resume.get("seconds", 0.0)
    model.train()
    sums = {k: torch.tensor(v, device=device) for k, v in resume.get("sums", {"loss": 0.0}).items()}
    correct, seen, tally = (
        torch.tensor(resume.get("correct", 0.0), device=device),
        resume.get("seen", 0),
        BadSampleTally(),
    )
    skip = resume.get("batches", 0)
    batches = 0

    def progress() -> dict:
        return {
            "batches": batches,
            "sums": {k: float(v) for k, v in sums.items()},
            "correct": float(correct),
            "seen": seen,
            "seconds": time.perf_counter() - t0,
        }

    ddp = isinstance(ctx.net, nn.parallel.DistributedDataParallel)
    join = Join([ctx.net]) if ddp else contextlib.nullcontext()  # ranks may get unequal sample counts
    with join:
        for i, batch in enumerate(loader):
            if settings.max_steps and i >= settings.max_steps:
                break
            tally.update(batch)
            batches = i + 1
            if i < skip:
                continue  # trained on before the checkpoint this run resumed from
            if len(batch["label"]) == 1 and settings.batch_size > 1:
                continue  # an epoch's 1-clip tail: BatchNorm cannot train on it (1x1x1 maps fail)
            target = batch["label"].to(device, non_blocking=True)
            loss_target = (
                smooth_targets(target, settings.num_classes, settings.label_smoothing)
                if settings.label_smoothing
                else target
            )
            features, terms = step_fn(ctx, batch, loss_target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms["loss"]).backward()
            if settings.clip_grad_norm:
                scaler.unscale_(optimizer)  # clip the true gradients, not fp16-scaled ones
                terms["grad_norm"] = nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad_norm)  # before
            with warmed_up(optimizer, step, settings.warmup_steps):
                scaler.step(optimizer)
            scaler.update()
            step += 1
            for k, v in terms.items():  # accumulate on device: no host sync per step
                sums[k] = sums.get(k, torch.zeros((), device=device)) + v.detach().float() * len(target)
            correct += (features["logits"].argmax(1) == target).sum()
            seen += len(target)
            if log_step is not None and settings.log_every and step % settings.log_every == 0:
                log_step(step, {k: float(v.detach()) for k, v in terms.items()})
            if on_step is not None:
                on_step(step, seen, progress)
    keys = sorted(sums)
    totals = all_reduce_sum([float(sums[k]) for k in keys] + [float(correct), seen, tally.total], device)
    seen_all = max(totals[-2], 1)
    metrics = {
        **{f"train_{k}": totals[j] / seen_all for j, k in enumerate(keys)},
        "train_top1": totals[len(keys)] / seen_all,
        "train_clips": int(totals[-2]),
        "bad_samples": int(totals[-1]),
        "seconds": time.perf_counter() - t0,
    }
    return metrics, step


@torch.no_grad()
def validate(model: nn.Module, loader, modality: str, device: torch.device, precision: str) -> dict:
    """Clip-level loss and top-1 / top-5 (one centre clip per video), summed over ranks."""
    model.eval()
    loss_sum = top1 = top5 = n = 0.0
    for batch in loader:
        target = batch["label"].to(device)
        with autocast(device, precision):
            logits = model(model_input(batch, modality, device)).float()
        loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        top1 += topk_correct(logits, target, 1)
        top5 += topk_correct(logits, target, 5)
        n += len(target)
    model.train()
    loss_sum, top1, top5, n = all_reduce_sum([loss_sum, top1, top5, n], device)
    return {
        "val_loss": loss_sum / max(n, 1),
        "val_top1": top1 / max(n, 1),
        "val_top5": top5 / max(n, 1),
        "val_clips": int(n),
    }


@torch.no_grad()
def clip_logits(streams: dict[str, tuple[nn.Module, str]], loader, device: torch.device, precision: str) -> dict:
    """Runs every stream over every test clip: {"keys": [...], "labels": (N,), "logits": {stream: (N,K)}}."""
    keys, labels, logits = [], [], {name: [] for name in streams}
    tally = BadSampleTally()
    for batch in loader:
        tally.update(batch)
        keys += list(batch["key"])
        labels.append(batch["label"])
        with autocast(device, precision):
            for name, (model, modality) in streams.items():
                logits[name].append(model(model_input(batch, modality, device)).float().cpu())
    result = {
        "keys": keys,
        "labels": torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long),
        "logits": {n: torch.cat(v) if v else torch.zeros(0) for n, v in logits.items()},
        "bad_samples": tally.total,
    }
    if dist.is_initialized():  # every rank scored its own shards: gather them all
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, result)
        result = {
            "keys": [k for p in parts for k in p["keys"]],
            "labels": torch.cat([p["labels"] for p in parts]),
            "logits": {n: torch.cat([p["logits"][n] for p in parts]) for n in streams},
            "bad_samples": sum(p["bad_samples"] for p in parts),
        }
    return result
