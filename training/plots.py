"""Pictures of a run: training curves, confusion matrices, the comparison bars.

Each is drawn on a `matplotlib.figure.Figure` of its own, without pyplot: no process-wide backend is
chosen (nothing calls `matplotlib.use`) and no figure outlives its function. `@drawing` makes any
failure (matplotlib missing, a full disk) a logged warning: a picture never ends a run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .optional import drawing


def _figure(figsize: tuple[float, float]):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _save(fig, png: Path) -> None:
    fig.tight_layout()
    fig.savefig(png, dpi=100)


@drawing
def plot_curves(metrics_path: Path, png: Path) -> None:
    """Loss and top-1 per epoch, train and validation, from metrics.jsonl."""
    fig = _figure((10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [r for r in map(json.loads, metrics_path.read_text().splitlines()) if r.get("kind") == "epoch"]
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
    _save(fig, png)


@drawing
def plot_confusion(confusion: list[list[int]], names: list[str], png: Path, title: str) -> None:
    """Row-normalised confusion matrix (rows: true class), counts written in the cells when few classes."""
    counts = np.asarray(confusion, dtype=np.float64)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(names)
    side = min(4 + 0.25 * k, 30)
    fig = _figure((side, side))
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        ax.set_xticks(range(k), names, rotation=90, fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(
                        j,
                        i,
                        int(counts[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black",
                    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    _save(fig, png)


@drawing
def plot_comparison(rows: list[dict], png: Path) -> None:
    """One figure, four bar panels sharing the model axis: video top-1, params, GFLOPs, clips/s."""
    labels = [r["model"] for r in rows]
    panels = [
        ("video top-1 (%)", [100 * r["video_top1"] for r in rows]),
        ("parameters (M)", [r["params"] / 1e6 for r in rows]),
        ("GFLOPs per clip (MACs)", [r["gflops"] for r in rows]),
        ("inference clips/s", [r["clips_per_second"] for r in rows]),
    ]
    fig = _figure((4 * 4, 3.6))
    for ax, (title, values) in zip(fig.subplots(1, 4), panels):
        ax.bar(range(len(values)), values, color="tab:blue")
        ax.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
    _save(fig, png)
