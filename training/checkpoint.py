"""Models from names and from checkpoints, checkpoints written atomically, and the RNG states that make
a resumed run take exactly the steps the uninterrupted run would have taken."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import TrainConfig, from_dict, to_dict
from .models.utils import freeze

log = logging.getLogger(__name__)
IN_CHANNELS = {"rgb": 3, "flow": 2}


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


def build_model(
    name: str, num_classes: int, in_channels: int, pretrained: str = "", model_args: dict | None = None
) -> nn.Module:
    from .models import create_model

    kwargs = {"pretrained": pretrained} if pretrained else {}
    return create_model(name, num_classes=num_classes, in_channels=in_channels, **kwargs, **(model_args or {}))


def load_trained(path: str, device: torch.device) -> tuple[nn.Module, TrainConfig, dict]:
    """(model in eval mode, its TrainConfig, checkpoint) from a checkpoint written by `train`."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = from_dict(TrainConfig, ckpt["config"])
    model = build_model(cfg.model, ckpt["num_classes"], IN_CHANNELS[cfg.modality], model_args=cfg.model_args)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg, ckpt


def load_teacher(path: str, device: torch.device) -> nn.Module:
    """A trained flow stream, frozen (eval mode, no gradients), for a student to imitate."""
    teacher, teacher_cfg, _ = load_trained(path, device)
    freeze(teacher)
    if teacher_cfg.modality != "flow":
        log.warning("teacher %s was trained on %s, not flow", path, teacher_cfg.modality)
    return teacher


def save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def training_state(
    cfg: TrainConfig, model, optimizer, scheduler, scaler, epoch: int, step: int, best: dict, class_names: list[str]
) -> dict:
    """Everything a resumed run needs, at the end of `epoch` (counted from 0)."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": epoch + 1,
        "step": step,
        "best": best,
        "rng": rng_states(),
        "config": to_dict(cfg),
        "num_classes": len(class_names),
        "class_names": class_names,
    }


def resume(path: Path, model, optimizer, scheduler, scaler) -> tuple[int, int, dict, dict | None]:
    """Loads a `training_state` into the objects; (first epoch to run, steps taken, best so far, progress):
    progress is None at an epoch end, or, for a mid-epoch checkpoint (--checkpoint-every), the batches of
    that epoch already trained on and its running sums (loops.train_one_epoch's `resume`)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_states(ckpt["rng"])
    log.info("resumed from %s at epoch %d step %d", path, ckpt["epoch"], ckpt["step"])
    return ckpt["epoch"], ckpt["step"], ckpt["best"], ckpt.get("progress")
