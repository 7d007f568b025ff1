"""`evaluate_checkpoint(cfg)`: clip- and video-level accuracy of one trained stream on the test videos."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from . import checkpoint
from .config import EvalConfig, write_config
from .distributed import setup_distributed
from .inputs import no_clips_message, test_loader
from .loops import clip_logits
from .metrics import score_metrics
from .plots import plot_confusion


def write_results(out: Path, results: dict, names: list[str], title: str) -> dict:
    """results.json (without the per-video scores) + confusion.png; returns the JSON-able part."""
    public = {k: v for k, v in results.items() if k not in ("video_probs", "video_keys")}
    (out / "results.json").write_text(json.dumps(public, indent=2) + "\n")
    plot_confusion(results["confusion"], names, out / "confusion.png", title)
    return public


def scored_or_raise(scored: dict, cfg) -> dict:
    if not scored["keys"]:
        raise ValueError(no_clips_message(cfg.data, cfg.partitions, cfg.split, cfg.split_name, "test"))
    return scored


def evaluate_checkpoint(cfg: EvalConfig) -> dict:
    """Writes OUT/results.json, scores.pt (per-video softmax), confusion.png and config.json."""
    device, rank, _ = setup_distributed(cfg.device)
    model, train_cfg, ckpt = checkpoint.load_trained(cfg.checkpoint, device)
    _, loader = test_loader(cfg, (train_cfg.modality,), model.sampling, cfg.partitions, cfg.split_name)
    scored = scored_or_raise(clip_logits({"model": (model, train_cfg.modality)}, loader, device, cfg.precision), cfg)
    results = score_metrics(scored["keys"], scored["labels"], scored["logits"]["model"], ckpt["num_classes"])
    results["bad_samples"] = scored["bad_samples"]
    if rank != 0:
        return results
    out = Path(cfg.out)
    write_config(cfg, out)
    torch.save({"keys": results["video_keys"], "probs": results["video_probs"]}, out / "scores.pt")
    return write_results(out, results, ckpt.get("class_names") or [str(i) for i in range(ckpt["num_classes"])],
                         f"{train_cfg.mode} ({train_cfg.modality}) video top-1 {results['video_top1']:.3f}")
