"""`evaluate_checkpoint(cfg)`: clip- and video-level accuracy of one trained stream on the test videos: the
separate, final step after training (which validated on held-out training videos, never on these)."""

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
    """results.json (without the per-video scores), confusion.json (+ class names) and confusion.png;
    returns the JSON-able part."""
    public = {k: v for k, v in results.items() if k != "video_probs"}
    (out / "results.json").write_text(json.dumps(public, indent=2) + "\n")
    (out / "confusion.json").write_text(
        json.dumps(
            {"rows": "true class", "columns": "predicted class", "class_names": names, "matrix": results["confusion"]}
        )
        + "\n"
    )
    plot_confusion(results["confusion"], names, out / "confusion.png", title)
    return public


def what_was_tested(cfg, spec_protocol: str, results: dict) -> dict:
    """results.json's record of which videos were scored, and how."""
    return {
        "protocol": spec_protocol,
        "data": cfg.data,
        "partitions": list(cfg.partitions),
        "split": cfg.split,
        "split_name": cfg.split_name,
        "videos": sorted(results["video_keys"]),
    }


def scored_or_raise(scored: dict, cfg) -> dict:
    if not scored["keys"]:
        raise ValueError(no_clips_message(cfg.data, cfg.partitions, cfg.split, cfg.split_name, "test"))
    return scored


def evaluate_checkpoint(cfg: EvalConfig) -> dict:
    """Writes OUT/results.json (naming the protocol and every video scored), scores.pt (per-video softmax),
    confusion.json, confusion.png and config.json."""
    device, rank, _ = setup_distributed(cfg.device)
    model, train_cfg, ckpt = checkpoint.load_trained(cfg.checkpoint, device)
    dataset, loader = test_loader(
        cfg, (train_cfg.modality,), model.sampling, cfg.partitions, cfg.split_name, train_crop=train_cfg.crop
    )
    scored = scored_or_raise(clip_logits({"model": (model, train_cfg.modality)}, loader, device, cfg.precision), cfg)
    results = score_metrics(scored["keys"], scored["labels"], scored["logits"]["model"], ckpt["num_classes"])
    results["bad_samples"] = scored["bad_samples"]
    results["tested"] = what_was_tested(cfg, dataset.spec.protocol, results)
    if rank != 0:
        return results
    out = Path(cfg.out)
    write_config(cfg, out)
    torch.save({"keys": results["video_keys"], "probs": results["video_probs"]}, out / "scores.pt")
    results.pop("video_keys")  # named, sorted, in results["tested"]
    return write_results(
        out,
        results,
        ckpt.get("class_names") or [str(i) for i in range(ckpt["num_classes"])],
        f"{train_cfg.mode} ({train_cfg.modality}) video top-1 {results['video_top1']:.3f}",
    )
