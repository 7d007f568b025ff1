"""Accuracy: top-k counts, clip- and video-level scores with the confusion matrix, metrics.jsonl lines."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def topk_correct(logits: torch.Tensor, target: torch.Tensor, k: int) -> int:
    k = min(k, logits.shape[1])
    return int((logits.topk(k, dim=1).indices == target[:, None]).any(dim=1).sum())


def score_metrics(keys: list[str], labels: torch.Tensor, logits: torch.Tensor, num_classes: int) -> dict:
    """Clip- and video-level top-1/top-5, per-class and mean class video top-1, the confusion matrix (rows =
    true class); a video's score is the mean softmax of its clips (x crops)."""
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
    confusion.index_put_(
        (video_labels, video_probs.argmax(1)), torch.ones(len(video_labels), dtype=torch.long), accumulate=True
    )
    per_class = class_accuracy(confusion)
    tested = [a for a in per_class if a is not None]
    return {
        "clip_top1": topk_correct(probs, labels, 1) / n_clips,
        "clip_top5": topk_correct(probs, labels, 5) / n_clips,
        "video_top1": topk_correct(video_probs, video_labels, 1) / n_videos,
        "video_top5": topk_correct(video_probs, video_labels, 5) / n_videos,
        "mean_class_top1": sum(tested) / max(len(tested), 1),
        "per_class_top1": per_class,
        "num_clips": len(keys),
        "num_videos": len(video_index),
        "confusion": confusion.tolist(),
        "video_keys": list(video_index),
        "video_probs": video_probs,
    }


def class_accuracy(confusion: torch.Tensor) -> list[float | None]:
    """Video top-1 of each class (rows = true class); None for a class with no test video, which the mean
    class accuracy (UCF101 / HMDB51 papers' other number) leaves out."""
    totals = confusion.sum(1).tolist()
    return [int(confusion[c, c]) / n if n else None for c, n in enumerate(totals)]


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
