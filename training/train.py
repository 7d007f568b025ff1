"""`train(cfg)`: one stream trained by the recipe of `cfg.mode`, DDP via torchrun's env vars.

It reads as the recipe: data, model (+ frozen teacher), optimizer, schedule, resume, then epochs of
(train, precise BN, validate, log, checkpoint). Validation is never the test set unless --val-on-test says
so; only validation epochs step a plateau schedule and choose best.pt. Everything random is seeded from
(seed, epoch) (per video: `data.plan_clips`), and a checkpoint holds model, optimizer, scheduler, scaler and
RNG states at an epoch end (and, with --checkpoint-every N, every N steps with the epoch's progress), so a
resumed run takes exactly the steps the uninterrupted run would have taken.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from torch import nn

from . import checkpoint
from .accel import prepare_network
from .config import LRSchedule, TrainConfig, write_config
from .data import ClipSpec, HeldOut
from .distributed import all_reduce_sum, barrier, setup_distributed
from .inputs import class_names, has_partition, loader_for, no_clips_message
from .loops import Features, StepContext, StepSettings, train_one_epoch, validate
from .metrics import append_jsonl
from .monitor import RunMonitor
from .plots import plot_curves
from .precise_bn import recompute_batchnorm
from .schedule import param_groups, scaled_lr

log = logging.getLogger(__name__)


def make_scheduler(cfg: TrainConfig, optimizer):
    if cfg.lr_schedule == LRSchedule.PLATEAU:
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience
        )
    if cfg.lr_schedule == LRSchedule.MULTISTEP:
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.lr_milestones), gamma=cfg.lr_factor)
    if cfg.lr_schedule == LRSchedule.COSINE:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def jitter_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of a rank's step-time draws (twins' colour jitter) in one epoch: every rank its own."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"jitter-{seed}-{epoch}-{rank}".encode()).digest()[:8], "big")


def train(cfg: TrainConfig) -> dict:
    """Trains one stream; returns the last epoch's metrics. Writes OUT/{last,best}.pt, metrics.jsonl, curves.png."""
    from .losses import create_loss

    recipe = cfg.recipe
    device, rank, world = setup_distributed(cfg.device)
    out = Path(cfg.out)
    if rank == 0:
        write_config(cfg, out)
    checkpoint.seed_everything(cfg.seed)
    names = class_names(cfg.data, cfg.num_classes)

    # model, and the frozen teacher of a distilling recipe
    model = checkpoint.build_model(
        cfg.model, len(names), checkpoint.IN_CHANNELS[recipe.modality], cfg.pretrained, cfg.model_args
    ).to(device)
    teacher = checkpoint.load_teacher(cfg.teacher, device) if recipe.needs_teacher else None
    loss_fn = create_loss(cfg.loss_name, **cfg.loss_args)
    advice = recipe.advice(cfg) if recipe.advice else ""
    if advice and rank == 0:
        log.warning(advice)
    net = Features(model)
    net = prepare_network(net, world, cfg.sync_bn, cfg.channels_last, cfg.compile)
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    ctx = StepContext(
        net, loss_fn, recipe.modality, device, cfg.precision, teacher, torch.Generator(), cfg.channels_last
    )

    # data: what the recipe reads for training, its stream's input alone for validation; by default the
    # validation videos are held out of the training selection (never the test set: --val-on-test)
    train_spec = ClipSpec(
        modalities=recipe.reads,
        frames=cfg.frames,
        sampling=model.sampling,
        train=True,
        crop_size=cfg.crop_size,
        crop=cfg.crop,
        flip=cfg.flip,
        views=recipe.views,
        clips_per_video=cfg.clips_per_video,
        decode=cfg.decode,
    )
    pin = device.type == "cuda"
    val_what, val_partitions, val_split_name = cfg.validation(has_partition(cfg.data, "val"))
    held_out = cfg.validates and val_what == "held_out"
    train_ds, train_loader = loader_for(
        cfg,
        cfg.train_partitions,
        cfg.train_split_name,
        train_spec,
        cfg.epoch_samples,
        cfg.buffer_size,
        pin,
        HeldOut(cfg.val_fraction, validation=False) if held_out else None,
    )
    val_loader = None
    if cfg.validates:
        val_spec = dataclasses.replace(train_spec, modalities=(recipe.modality,), train=False, views=1)
        val_ds, val_loader = loader_for(
            cfg,
            val_partitions,
            val_split_name,
            val_spec,
            pin=pin,
            held_out=HeldOut(cfg.val_fraction, validation=True) if held_out else None,
        )
        if val_what == "test" and rank == 0:
            log.warning(
                "--val-on-test: best.pt and the LR drops are chosen on the test videos; their test "
                "accuracy is then not an unbiased estimate"
            )

    # optimizer, schedule, resume
    lr = scaled_lr(cfg.lr, cfg.batch_size, world, cfg.lr_base_batch)
    optimizer = torch.optim.SGD(
        param_groups(model, cfg.weight_decay, not cfg.decay_norm_bias), lr=lr, momentum=cfg.momentum
    )
    scheduler = make_scheduler(cfg, optimizer)
    scaler = torch.amp.GradScaler(enabled=cfg.precision == "fp16")
    start_epoch, step, best, progress = 0, 0, {"val_top1": -1.0}, None  # best: of the validation epochs only
    last = out / "last.pt"
    if cfg.resume and last.is_file():
        start_epoch, step, best, progress = checkpoint.resume(last, model, optimizer, scheduler, scaler)
        if progress and rank:  # rank 0 carries the epoch's sums over all ranks; the others only skip batches
            progress = {**progress, "sums": dict.fromkeys(progress["sums"], 0.0), "correct": 0.0, "seen": 0}

    # the loop
    metrics_path = out / "metrics.jsonl"
    settings = StepSettings(
        cfg.batch_size,
        cfg.max_steps,
        cfg.clip_grad_norm,
        cfg.log_every,
        cfg.warmup_steps,
        cfg.label_smoothing,
        len(names),
    )
    expected = cfg.epoch_samples * cfg.clips_per_video // (cfg.batch_size * world) if cfg.epoch_samples else 0
    if cfg.max_steps:
        expected = min(expected or cfg.max_steps, cfg.max_steps)
    monitor = RunMonitor(
        cfg.checkpoint_every, rank, cfg.progress, out / "tensorboard" if cfg.tensorboard else None, expected
    )
    epoch_metrics: dict = {}
    for epoch in range(start_epoch, cfg.epochs):
        train_ds.set_epoch(epoch)
        ctx.generator.manual_seed(jitter_seed(cfg.seed, epoch, rank))  # per rank, and exact on resume

        def log_step(step: int, terms: dict, epoch: int = epoch) -> None:
            append_jsonl(
                metrics_path,
                {"kind": "step", "epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"], **terms},
            )

        def save_mid_epoch(progress: dict, epoch: int = epoch, best: dict = best) -> None:
            # every rank calls this (a collective): the epoch's running sums so far, over all ranks
            keys = sorted(progress["sums"])
            totals = all_reduce_sum(
                [progress["sums"][k] for k in keys] + [progress["correct"], progress["seen"]], device
            )
            progress = {**progress, "sums": dict(zip(keys, totals)), "correct": totals[-2], "seen": int(totals[-1])}
            if rank == 0:
                state = checkpoint.training_state(
                    cfg, model, optimizer, scheduler, scaler, epoch, progress["step"], best, names
                )
                # "epoch": this one, unfinished; "progress" tells train_one_epoch where in it to go on
                checkpoint.save_atomic({**state, "epoch": epoch, "progress": progress}, last)

        monitor.start_epoch(epoch, save_mid_epoch, progress)
        trained, step = train_one_epoch(
            recipe.step,
            ctx,
            model,
            optimizer,
            scaler,
            train_loader,
            settings,
            step,
            log_step if rank == 0 else None,
            progress,
            monitor.on_step,
        )
        progress = None
        if trained["train_clips"] == 0:  # an empty selection would otherwise "train" every epoch on nothing
            raise ValueError(
                no_clips_message(cfg.data, cfg.train_partitions, cfg.split, cfg.train_split_name, "training")
            )
        epoch_metrics = {
            "kind": "epoch",
            "epoch": epoch,
            "step": step,
            "lr": optimizer.param_groups[0]["lr"],
            **trained,
        }
        epoch_metrics["clips_per_second"] = epoch_metrics["train_clips"] / epoch_metrics["seconds"]
        if cfg.precise_bn_batches:
            recompute_batchnorm(model, train_loader, recipe.modality, device, cfg.precision, cfg.precise_bn_batches)
        validated = val_loader is not None and ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs)
        if validated:
            val_ds.set_epoch(epoch)
            val = validate(model, val_loader, recipe.modality, device, cfg.precision)
            if val["val_clips"] == 0:
                raise ValueError(
                    no_clips_message(cfg.data, val_partitions, cfg.split, val_split_name, "validation")
                    + (f"; or no video hashed below --val-fraction {cfg.val_fraction}" if held_out else "")
                )
            epoch_metrics.update(val, val_set=val_what)
        # A plateau schedule watches the validation loss, on the epochs that have one (config: it needs them);
        # the others step every epoch. best.pt is the best validation top-1 (no validation: no best.pt).
        if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step()
        elif validated:
            scheduler.step(epoch_metrics["val_loss"])

        # checkpoint
        improved = validated and epoch_metrics["val_top1"] > best["val_top1"]
        if improved:
            best = {"val_top1": epoch_metrics["val_top1"], "epoch": epoch}
        if rank == 0:
            append_jsonl(metrics_path, epoch_metrics)
            monitor.end_epoch(epoch_metrics)
            state = checkpoint.training_state(cfg, model, optimizer, scheduler, scaler, epoch, step, best, names)
            checkpoint.save_atomic(state, last)
            if improved:
                checkpoint.save_atomic(state, out / "best.pt")
            plot_curves(metrics_path, out / "curves.png")
            log.info(
                "epoch %d: %s", epoch, {k: round(v, 4) if isinstance(v, float) else v for k, v in epoch_metrics.items()}
            )
    monitor.close()
    barrier()
    return epoch_metrics
