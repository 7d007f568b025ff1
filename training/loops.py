"""Training, evaluation and fusion loops: plain functions over a config, DDP via torchrun's env vars.

`train(cfg)` reads as the recipe: distributed setup, data, model (+ frozen teacher), optimizer,
scheduler, resume, then epochs of (train, validate, log, checkpoint). Everything random is seeded
from (seed, epoch), and a checkpoint holds model, optimizer, scheduler, scaler and RNG states at an
epoch end, so a resumed run takes exactly the steps the uninterrupted run would have taken.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .config import EvalConfig, FuseConfig, TrainConfig, from_dict, validate, write_config
from .data import ACTIVITYNET_MEAN_RGB, BadSampleTally, ClipSpec, ShardClipDataset, make_loader, shard_urls
from .losses.twins import augment_clips
from .models.utils import freeze
from .optional import drawing

log = logging.getLogger(__name__)
IN_CHANNELS = {"rgb": 3, "flow": 2}


# ---- environment ------------------------------------------------------------------------------------

def setup_distributed(device: str) -> tuple[torch.device, int, int]:
    """(device, rank, world_size); joins the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True  # fixed clip shapes: let cuDNN pick the fastest kernels
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dev, (dist.get_rank() if dist.is_initialized() else 0), world


def autocast(device: torch.device, precision: str):
    """Mixed precision context: bf16 / fp16 autocast on CUDA, nothing for fp32."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# ---- data and models --------------------------------------------------------------------------------

def dataset_classes(data: str) -> list[str]:
    """Class names by label, from the extractor's manifest.parquet."""
    import fsspec

    from flowprep.manifest import table_from_parquet_bytes

    url = f"{data.rstrip('/')}/manifest.parquet"
    try:
        with fsspec.open(url, "rb") as f:
            table = table_from_parquet_bytes(f.read(), url, columns=["label", "class_name"]).to_pylist()
    except FileNotFoundError:
        raise FileNotFoundError(f"{url} not found: pass --num-classes") from None
    names = {row["label"]: row["class_name"] for row in table if row["label"] is not None and row["label"] >= 0}
    return [names.get(i, str(i)) for i in range(max(names) + 1)]


def class_names(data: str, num_classes: int) -> list[str]:
    if num_classes:
        with contextlib.suppress(FileNotFoundError):
            names = dataset_classes(data)
            if len(names) == num_classes:
                return names
        return [str(i) for i in range(num_classes)]
    return dataset_classes(data)


def loader_for(cfg, partitions: str, split_name: str, spec: ClipSpec, epoch_samples: int = 0,
               buffer_size: int = 0, pin: bool = False):
    urls = shard_urls(cfg.data, [p for p in partitions.split(",") if p])
    ds = ShardClipDataset(urls, spec, split=cfg.split, split_name=split_name, seed=cfg.seed,
                          epoch_samples=epoch_samples, buffer_size=buffer_size)
    return ds, make_loader(ds, cfg.batch_size, cfg.workers, pin_memory=pin)


class Features(nn.Module):
    """Wraps a model so DDP's forward is `forward_features` (DDP only syncs what its forward ran)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict:
        return self.model.forward_features(x)


def build_model(name: str, num_classes: int, in_channels: int, pretrained: str = "", model_args: str = "{}") -> nn.Module:
    from .models import create_model

    kwargs = {"pretrained": pretrained} if pretrained else {}
    return create_model(name, num_classes=num_classes, in_channels=in_channels, **kwargs, **json.loads(model_args))


def load_trained(path: str, device: torch.device) -> tuple[nn.Module, TrainConfig, dict]:
    """(model in eval mode, its TrainConfig, checkpoint) from a checkpoint written by `train`."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = from_dict(TrainConfig, ckpt["config"])
    model = build_model(cfg.model, ckpt["num_classes"], IN_CHANNELS[cfg.modality], model_args=cfg.model_args)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg, ckpt


def split_views(feats: dict, batch: int) -> tuple[dict, dict]:
    """Features of a forward over two stacked views -> one dict per view (dim 0 is view-major)."""
    first = {k: v[: v.shape[0] // 2] for k, v in feats.items()}
    second = {k: v[v.shape[0] // 2:] for k, v in feats.items()}
    return first, second


def topk_correct(logits: torch.Tensor, target: torch.Tensor, k: int) -> int:
    k = min(k, logits.shape[1])
    return int((logits.topk(k, dim=1).indices == target[:, None]).any(dim=1).sum())


# ---- training ---------------------------------------------------------------------------------------

def make_scheduler(cfg: TrainConfig, optimizer):
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg.lr_factor,
                                                          patience=cfg.lr_patience)
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def train(cfg: TrainConfig) -> dict:
    """Trains one stream; returns the last epoch's metrics. Writes OUT/{last,best}.pt, metrics.jsonl, curves.png."""
    from torch.distributed.algorithms.join import Join

    validate(cfg)
    device, rank, world = setup_distributed(cfg.device)
    out = Path(cfg.out)
    if rank == 0:
        write_config(cfg, out)
    seed_everything(cfg.seed)
    names = class_names(cfg.data, cfg.num_classes)
    num_classes = len(names)

    model = build_model(cfg.model, num_classes, IN_CHANNELS[cfg.modality], cfg.pretrained, cfg.model_args).to(device)
    teacher = None
    if cfg.mode == "student":
        teacher, teacher_cfg, _ = load_trained(cfg.teacher, device)
        freeze(teacher)
        if teacher_cfg.modality != "flow":
            log.warning("teacher %s was trained on %s, not flow", cfg.teacher, teacher_cfg.modality)
    from .losses import create_loss

    loss_fn = create_loss(cfg.loss_name, **json.loads(cfg.loss_args))
    if cfg.mode == "twins" and not cfg.pretrained and not cfg.clip_grad_norm and rank == 0:
        log.warning("twins from scratch without --clip-grad-norm: the correlation loss's first gradients can "
                    "derail training (docs/baselines.md); the TSN/TSM recipe clips at 20")
    net = Features(model)
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    modalities = ("rgb", "flow") if cfg.mode == "student" else (cfg.modality,)
    train_spec = ClipSpec(modalities=modalities, frames=cfg.frames, sampling=model.sampling, train=True,
                          crop_size=cfg.crop_size, crop=cfg.crop, flip=cfg.flip, views=2 if cfg.mode == "twins" else 1)
    pin = device.type == "cuda"
    train_ds, train_loader = loader_for(cfg, cfg.train_partitions, cfg.train_split_name, train_spec,
                                        cfg.epoch_samples, cfg.buffer_size, pin)
    val_loader = None
    if cfg.val_partitions:
        val_spec = dataclasses.replace(train_spec, modalities=(cfg.modality,), train=False, views=1)
        val_ds, val_loader = loader_for(cfg, cfg.val_partitions, cfg.val_split_name, val_spec, pin=pin)

    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(cfg, optimizer)
    scaler = torch.amp.GradScaler(enabled=cfg.precision == "fp16")
    start_epoch, step, best = 0, 0, {"val_top1": -1.0}
    last = out / "last.pt"
    if cfg.resume and last.is_file():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, step, best = ckpt["epoch"], ckpt["step"], ckpt["best"]
        set_rng_states(ckpt["rng"])
        log.info("resumed from %s at epoch %d step %d", last, start_epoch, step)

    metrics_path = out / "metrics.jsonl"
    epoch_metrics: dict = {}
    for epoch in range(start_epoch, cfg.epochs):
        train_ds.set_epoch(epoch)
        t0 = time.perf_counter()
        model.train()
        sums = {"loss": torch.zeros((), device=device)}
        correct, seen, tally = torch.zeros((), device=device), 0, BadSampleTally()
        join = Join([net]) if world > 1 else contextlib.nullcontext()  # ranks may get unequal sample counts
        with join:
            for i, batch in enumerate(train_loader):
                if cfg.max_steps and i >= cfg.max_steps:
                    break
                tally.update(batch)
                if len(batch["label"]) == 1 and cfg.batch_size > 1:
                    continue  # an epoch's 1-clip tail: BatchNorm cannot train on it (1x1x1 maps fail)
                target = batch["label"].to(device, non_blocking=True)
                x = batch[cfg.modality].to(device, non_blocking=True)
                if cfg.mode == "twins":  # loader: a crop + flip per view; Twins Training's colour ops here
                    x = augment_clips(torch.cat([x, batch["rgb2"].to(device, non_blocking=True)]),
                                      mean=ACTIVITYNET_MEAN_RGB, pixel_max=255.0, spatial=False)
                with autocast(device, cfg.precision):
                    feats = net(x)
                    extra = {}
                    if cfg.mode == "twins":
                        feats, extra["student2"] = split_views(feats, len(target))
                    if teacher is not None:
                        with torch.no_grad():
                            extra["teacher"] = teacher.forward_features(batch["flow"].to(device, non_blocking=True))
                    terms = loss_fn(feats, target, **extra)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(terms["loss"]).backward()
                if cfg.clip_grad_norm:
                    scaler.unscale_(optimizer)  # clip the true gradients, not fp16-scaled ones
                    terms["grad_norm"] = nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)  # before
                scaler.step(optimizer)
                scaler.update()
                step += 1
                for k, v in terms.items():  # accumulate on device: no host sync per step
                    sums[k] = sums.get(k, torch.zeros((), device=device)) + v.detach().float() * len(target)
                correct += (feats["logits"].argmax(1) == target).sum()
                seen += len(target)
                if rank == 0 and cfg.log_every and step % cfg.log_every == 0:
                    append_jsonl(metrics_path, {"kind": "step", "epoch": epoch, "step": step,
                                                "lr": optimizer.param_groups[0]["lr"],
                                                **{k: float(v.detach()) for k, v in terms.items()}})
        keys = sorted(sums)
        totals = all_reduce_sum([float(sums[k]) for k in keys] + [float(correct), seen, tally.total], device)
        if totals[-2] == 0:  # an empty selection would otherwise "train" every epoch on nothing, silently
            raise ValueError(no_clips_message(cfg.data, cfg.train_partitions, cfg.split, cfg.train_split_name,
                                              "training"))
        seen_all = max(totals[-2], 1)
        epoch_metrics = {"kind": "epoch", "epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"],
                         **{f"train_{k}": totals[j] / seen_all for j, k in enumerate(keys)},
                         "train_top1": totals[len(keys)] / seen_all, "train_clips": int(totals[-2]),
                         "bad_samples": int(totals[-1]), "seconds": time.perf_counter() - t0}
        epoch_metrics["clips_per_second"] = epoch_metrics["train_clips"] / epoch_metrics["seconds"]
        if cfg.precise_bn_batches:
            recompute_batchnorm(model, train_loader, cfg.modality, device, cfg.precision, cfg.precise_bn_batches)
        monitored = epoch_metrics["train_loss"]
        if val_loader is not None and ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs):
            val_ds.set_epoch(epoch)
            val = validate_clips(model, val_loader, cfg.modality, device, cfg.precision)
            epoch_metrics.update(val)
            monitored = val["val_loss"]
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(monitored)
        else:
            scheduler.step()
        improved = epoch_metrics.get("val_top1", epoch_metrics["train_top1"]) > best["val_top1"]
        if improved:
            best = {"val_top1": epoch_metrics.get("val_top1", epoch_metrics["train_top1"]), "epoch": epoch}
        if rank == 0:
            append_jsonl(metrics_path, epoch_metrics)
            ckpt = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch + 1,
                    "step": step, "best": best, "rng": rng_states(), "config": dataclasses.asdict(cfg),
                    "num_classes": num_classes, "class_names": names}
            save_atomic(ckpt, last)
            if improved:
                save_atomic(ckpt, out / "best.pt")
            plot_curves(metrics_path, out / "curves.png")
            log.info("epoch %d: %s", epoch, {k: round(v, 4) if isinstance(v, float) else v
                                              for k, v in epoch_metrics.items()})
    if dist.is_initialized():
        dist.barrier()
    return epoch_metrics


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, loader, modality: str, device: torch.device, precision: str,
                        batches: int) -> None:
    """Precise BN: BatchNorm running statistics recomputed as the plain average over `batches` training
    batches with the final weights, instead of the exponential average trailing the whole epoch's
    changing weights (what a short run's test accuracy suffers from). Under DDP every rank averages its
    own `batches` batches, then the ranks average theirs: the statistics of batches x world batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: cumulative average over the batches seen
    model.train()
    for i, batch in enumerate(loader):
        if i >= batches:
            break
        with autocast(device, precision):
            model(batch[modality].to(device, non_blocking=True))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    average_over_ranks([buf for m in norms for buf in (m.running_mean, m.running_var) if buf is not None])


@torch.no_grad()
def average_over_ranks(tensors: list[torch.Tensor]) -> None:
    """In place: each tensor becomes its mean over the ranks (a no-op outside torch.distributed).

    Without it each rank would keep statistics of its own batches only, and DDP's buffer broadcast
    would then impose rank 0's on everyone at the next forward.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    for t in tensors:
        dist.all_reduce(t)
        t /= dist.get_world_size()


@torch.no_grad()
def validate_clips(model: nn.Module, loader, modality: str, device: torch.device, precision: str) -> dict:
    """Clip-level loss and top-1 / top-5 (one centre clip per video), summed over ranks."""
    model.eval()
    loss_sum = top1 = top5 = n = 0.0
    for batch in loader:
        target = batch["label"].to(device)
        with autocast(device, precision):
            logits = model(batch[modality].to(device)).float()
        loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        top1 += topk_correct(logits, target, 1)
        top5 += topk_correct(logits, target, 5)
        n += len(target)
    model.train()
    loss_sum, top1, top5, n = all_reduce_sum([loss_sum, top1, top5, n], device)
    n = max(n, 1)
    return {"val_loss": loss_sum / n, "val_top1": top1 / n, "val_top5": top5 / n, "val_clips": int(n)}


def save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


# ---- evaluation and fusion ----------------------------------------------------------------------------

def no_clips_message(data: str, partitions: str, split: str, split_name: str, what: str) -> str:
    return (f"no {what} clips in {data}: no video of partitions {partitions!r} has splits[{split!r}] == "
            f"{split_name!r} (or every sample was bad); check --split and the partition / split-name flags")


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
                logits[name].append(model(batch[modality].to(device)).float().cpu())
    result = {"keys": keys, "labels": torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long),
              "logits": {n: torch.cat(v) if v else torch.zeros(0) for n, v in logits.items()},
              "bad_samples": tally.total}
    if dist.is_initialized():  # every rank scored its own shards: gather them all
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, result)
        result = {"keys": [k for p in parts for k in p["keys"]],
                  "labels": torch.cat([p["labels"] for p in parts]),
                  "logits": {n: torch.cat([p["logits"][n] for p in parts]) for n in streams},
                  "bad_samples": sum(p["bad_samples"] for p in parts)}
    return result


def score_metrics(keys: list[str], labels: torch.Tensor, logits: torch.Tensor, num_classes: int) -> dict:
    """Clip- and video-level top-1/top-5; a video's score is the mean softmax of its clips (x crops)."""
    probs = logits.float().softmax(dim=1)
    video_index: dict[str, int] = {}
    for k in keys:
        video_index.setdefault(k, len(video_index))
    idx = torch.tensor([video_index[k] for k in keys], dtype=torch.long)
    video_probs = torch.zeros(len(video_index), num_classes).index_add_(0, idx, probs)
    counts = torch.zeros(len(video_index)).index_add_(0, idx, torch.ones(len(keys)))
    video_probs /= counts[:, None].clamp(min=1)
    video_labels = torch.zeros(len(video_index), dtype=torch.long).index_copy_(0, idx, labels)
    n_clips, n_videos = max(len(keys), 1), max(len(video_index), 1)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((video_labels, video_probs.argmax(1)), torch.ones(len(video_labels), dtype=torch.long),
                         accumulate=True)
    return {"clip_top1": topk_correct(probs, labels, 1) / n_clips, "clip_top5": topk_correct(probs, labels, 5) / n_clips,
            "video_top1": topk_correct(video_probs, video_labels, 1) / n_videos,
            "video_top5": topk_correct(video_probs, video_labels, 5) / n_videos,
            "num_clips": len(keys), "num_videos": len(video_index), "confusion": confusion.tolist(),
            "video_keys": list(video_index), "video_probs": video_probs}


def test_loader(cfg, modalities: tuple[str, ...], sampling: str, partitions: str, split_name: str, train: bool = False):
    spec = ClipSpec(modalities=modalities, frames=cfg.frames, sampling=sampling, train=train,
                    crop_size=cfg.crop_size, crop="center", flip=False,
                    test_clips=getattr(cfg, "test_clips", 1), test_crops=getattr(cfg, "test_crops", 1))
    return loader_for(cfg, partitions, split_name, spec, buffer_size=16 if train else 0)


def write_results(out: Path, results: dict, names: list[str], title: str) -> dict:
    """results.json (without the per-video scores) + confusion.png; returns the JSON-able part."""
    public = {k: v for k, v in results.items() if k not in ("video_probs", "video_keys")}
    (out / "results.json").write_text(json.dumps(public, indent=2) + "\n")
    plot_confusion(results["confusion"], names, out / "confusion.png", title)
    return public


def evaluate(cfg: EvalConfig) -> dict:
    """Clip- and video-level accuracy of one checkpoint on the test videos; writes OUT/results.json etc."""
    validate(cfg)
    device, rank, _ = setup_distributed(cfg.device)
    model, train_cfg, ckpt = load_trained(cfg.checkpoint, device)
    _, loader = test_loader(cfg, (train_cfg.modality,), model.sampling, cfg.partitions, cfg.split_name)
    scored = clip_logits({"model": (model, train_cfg.modality)}, loader, device, cfg.precision)
    if not scored["keys"]:
        raise ValueError(no_clips_message(cfg.data, cfg.partitions, cfg.split, cfg.split_name, "test"))
    results = score_metrics(scored["keys"], scored["labels"], scored["logits"]["model"], ckpt["num_classes"])
    results["bad_samples"] = scored["bad_samples"]
    if rank != 0:
        return results
    out = Path(cfg.out)
    write_config(cfg, out)
    torch.save({"keys": results["video_keys"], "probs": results["video_probs"]}, out / "scores.pt")
    return write_results(out, results, ckpt.get("class_names") or [str(i) for i in range(ckpt["num_classes"])],
                         f"{train_cfg.mode} ({train_cfg.modality}) video top-1 {results['video_top1']:.3f}")


def fuse(cfg: FuseConfig) -> dict:
    """Two frozen streams fused by score averaging or by the attention fusion module (trained here)."""
    from .models.fusion import AttentionFusion, average_scores

    validate(cfg)
    device, rank, _ = setup_distributed(cfg.device)
    (model_a, cfg_a, ckpt_a), (model_b, cfg_b, ckpt_b) = (load_trained(p, device) for p in (cfg.checkpoint_a, cfg.checkpoint_b))
    num_classes = ckpt_a["num_classes"]
    if ckpt_b["num_classes"] != num_classes:
        raise ValueError(f"streams disagree on classes: {num_classes} vs {ckpt_b['num_classes']}")
    if model_a.sampling != model_b.sampling:
        raise ValueError(f"streams sample clips differently: {model_a.sampling} vs {model_b.sampling}")
    streams = {"a": (model_a, cfg_a.modality), "b": (model_b, cfg_b.modality)}
    modalities = tuple(sorted({cfg_a.modality, cfg_b.modality}, key=["rgb", "flow"].index))
    seed_everything(cfg.seed)
    fusion = None
    history = []
    if cfg.method == "attention":
        fusion = AttentionFusion(num_classes).to(device)
        optimizer = torch.optim.SGD(fusion.parameters(), lr=cfg.lr, momentum=0.9)
        train_ds, train_loader = test_loader(cfg, modalities, model_a.sampling, cfg.train_partitions,
                                             cfg.train_split_name, train=True)
        for epoch in range(cfg.epochs):  # streams frozen: only the fusion module learns
            train_ds.set_epoch(epoch)
            loss_sum = n = 0.0
            for batch in train_loader:
                with torch.no_grad(), autocast(device, cfg.precision):
                    scores = [m(batch[mod].to(device)).float() for m, mod in streams.values()]
                loss = F.cross_entropy(fusion(scores), batch["label"].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum, n = loss_sum + float(loss.detach()) * len(scores[0]), n + len(scores[0])
            history.append({"epoch": epoch, "fusion_loss": loss_sum / max(n, 1)})
        fusion.eval()
    _, loader = test_loader(cfg, modalities, model_a.sampling, cfg.partitions, cfg.split_name)
    scored = clip_logits(streams, loader, device, cfg.precision)
    if not scored["keys"]:
        raise ValueError(no_clips_message(cfg.data, cfg.partitions, cfg.split, cfg.split_name, "test"))
    la, lb = scored["logits"]["a"], scored["logits"]["b"]
    with torch.no_grad():
        fused = fusion([la.to(device), lb.to(device)]).cpu() if fusion else average_scores([la, lb])
    results = {name: {k: v for k, v in score_metrics(scored["keys"], scored["labels"], logits, num_classes).items()
                      if k.endswith(("top1", "top5"))}
               for name, logits in (("stream_a", la), ("stream_b", lb))}
    fused_metrics = score_metrics(scored["keys"], scored["labels"], fused, num_classes)
    results.update(fused_metrics, method=cfg.method, fusion_history=history, bad_samples=scored["bad_samples"])
    if rank != 0:
        return results
    out = Path(cfg.out)
    write_config(cfg, out)
    if fusion is not None:
        torch.save(fusion.state_dict(), out / "fusion.pt")
    return write_results(out, results, ckpt_a.get("class_names") or [str(i) for i in range(num_classes)],
                         f"{cfg.method} fusion, video top-1 {fused_metrics['video_top1']:.3f}")


# ---- pictures ---------------------------------------------------------------------------------------

@drawing
def plot_curves(metrics_path: Path, png: Path) -> None:
    """Loss and top-1 per epoch, train and validation, from metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r for r in map(json.loads, metrics_path.read_text().splitlines()) if r.get("kind") == "epoch"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    x = [r["epoch"] + 1 for r in epochs]
    for key, ax in (("loss", ax_loss), ("top1", ax_acc)):
        for prefix in ("train_", "val_"):
            points = [(e, r[prefix + key]) for e, r in zip(x, epochs) if prefix + key in r]
            if points:
                ax.plot(*zip(*points), marker=".", label=prefix + key)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    ax_acc.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


@drawing
def plot_confusion(confusion: list[list[int]], names: list[str], png: Path, title: str) -> None:
    """Row-normalised confusion matrix (rows: true class), counts written in the cells when few classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion, dtype=np.float64)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(names)
    side = min(4 + 0.25 * k, 30)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        ax.set_xticks(range(k), names, rotation=90, fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)

