"""One stream trained with its own labels: the flow teacher and the RGB baseline (cross-entropy by default)."""

from __future__ import annotations

from . import Recipe


def classify(ctx, batch: dict, target) -> tuple[dict, dict]:
    x = ctx.input(batch, ctx.modality)
    with ctx.autocast():
        features = ctx.net(x)
        return features, ctx.loss_fn(features, target)


TEACHER = Recipe(
    "teacher",
    "Train the flow teacher (motion stream) with cross-entropy.",
    modality="flow",
    reads=("flow",),
    default_loss="ce",
    step=classify,
)
BASELINE = Recipe(
    "baseline",
    "Train the RGB-only baseline with cross-entropy.",
    modality="rgb",
    reads=("rgb",),
    default_loss="ce",
    step=classify,
)
