"""An RGB student distilled from a frozen flow teacher (MARS, IMRS, Dual-action: the loss decides how)."""

from __future__ import annotations

from . import Recipe


def distil(ctx, batch: dict, target) -> tuple[dict, dict]:
    """The student sees RGB; the teacher, frozen and without gradients, the same clip's flow."""
    import torch

    x = ctx.input(batch, "rgb")
    with ctx.autocast():
        features = ctx.net(x)
        with torch.no_grad():
            teacher = ctx.teacher.forward_features(ctx.input(batch, "flow"))
        return features, ctx.loss_fn(features, target, teacher=teacher)


STUDENT = Recipe(
    "student",
    "Train the RGB student to imitate a frozen flow teacher (--teacher).",
    modality="rgb",
    reads=("rgb", "flow"),
    default_loss="mars",
    step=distil,
    needs_teacher=True,
)
