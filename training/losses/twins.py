"""Twins Training (Wang et al., TPAMI, STM paper Sec. 3.5): two augmented views through one shared net,
cross-entropy on both plus a correlation loss on the classification outputs.

With Y^A, Y^B the two views' logits (B, K) (the paper applies the loss "directly to the final
classification features", not to a projector), each column is L2-normalised over the batch and

    C_ij   = sum_n y^A_ni y^B_nj / (||y^A_:i|| ||y^B_:j||)                    (eq. 8, K x K)
    L_cor  = sum_i (1 - C_ii)^2 + beta * sum_i sum_{j != i} C_ij^2             (eq. 9)
    L      = (CE(Y^A, t) + CE(Y^B, t)) / 2 + lambda * L_cor                    (eq. 10)

with beta = 0.0039 (taken from Barlow Twins) and lambda = 0.01. Unlike Barlow Twins the columns are
not mean-centred: the paper normalises with the L2 norm only.

`twin_views` makes the two views from one batch of clips with the paper's augmentation family A
(corner crop with scale jitter, horizontal flip, colour jitter, grayscale), the same draw for every
frame of a clip so the motion between frames is left intact.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from . import LossFn

BETA = 0.0039
LAMBDA = 0.01


def correlation_loss(logits_a: torch.Tensor, logits_b: torch.Tensor, beta: float = BETA) -> dict[str, torch.Tensor]:
    """logits_a, logits_b: (B, K) -> {"cor", "cor_on_diag", "cor_off_diag"} (eq. 8-9)."""
    if logits_a.shape != logits_b.shape or logits_a.dim() != 2:
        raise ValueError(f"views must be equal (B, K) tensors, got {tuple(logits_a.shape)} and {tuple(logits_b.shape)}")
    z_a = F.normalize(logits_a.float(), dim=0)  # unit L2 norm over the batch, per class column
    z_b = F.normalize(logits_b.float(), dim=0)
    cross_correlation = z_a.T @ z_b  # (K, K), entries in [-1, 1]
    diagonal = torch.diagonal(cross_correlation)
    on_diag = (1 - diagonal).pow(2).sum()
    off_diag = cross_correlation.pow(2).sum() - diagonal.pow(2).sum()
    return {"cor": on_diag + beta * off_diag, "cor_on_diag": on_diag, "cor_off_diag": off_diag}


def twins_loss(
    student: dict,
    target: torch.Tensor,
    teacher: dict | None = None,
    *,
    student2: dict,
    beta: float = BETA,
    lam: float = LAMBDA,
) -> dict[str, torch.Tensor]:
    """Loss contract of `training/losses`: `student`/`student2` are the two views' `forward_features`
    dicts (only "logits" is read); `teacher` is accepted for the common signature and not used."""
    logits_a, logits_b = student["logits"].float(), student2["logits"].float()  # fp32 under autocast
    ce_a = F.cross_entropy(logits_a, target)
    ce_b = F.cross_entropy(logits_b, target)
    terms = correlation_loss(logits_a, logits_b, beta)
    ce = (ce_a + ce_b) / 2
    return {"loss": ce + lam * terms["cor"], "ce": ce, "ce_a": ce_a, "ce_b": ce_b, **terms}


def twins(beta: float = BETA, lam: float = LAMBDA) -> LossFn:
    """Registry entry "twins"; the loop must pass the second view's features as `student2=`."""
    if beta < 0 or lam < 0:
        raise ValueError(f"twins beta and lam must be >= 0, got beta={beta}, lam={lam}")
    return partial(twins_loss, beta=beta, lam=lam)


def twin_views(
    clips: torch.Tensor,
    generator: torch.Generator | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    pixel_max: float = 1.0,
    flip: bool = True,
    spatial: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """clips: float (B, C, T, H, W), pixels in [0, pixel_max], or normalised as (pixels - mean) / std
    (then undone and redone around the colour ops; the flowprep loader's RGB is `mean=ActivityNet mean,
    std=(1, 1, 1), pixel_max=255`) -> two independently augmented views of the same shape.
    `flip=False` for datasets whose labels name a direction (Something-Something's left/right);
    `spatial=False` applies only the colour ops, for clips the loader already cropped twice (`views=2`)."""
    views = [augment_clips(clips, generator, mean, std, pixel_max, flip, spatial) for _ in range(2)]
    return views[0], views[1]


def augment_clips(
    clips: torch.Tensor,
    generator: torch.Generator | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    pixel_max: float = 1.0,
    flip: bool = True,
    spatial: bool = True,
) -> torch.Tensor:
    """One view of `twin_views` (same arguments): each clip gets its own draw of family A, shared by
    its frames. `flowprep-train twins` calls it with `spatial=False` on the loader's two crops."""
    if clips.dim() != 5:
        raise ValueError(f"expected clips (B, C, T, H, W), got shape {tuple(clips.shape)}")
    scale = shift = None
    if mean is not None or std is not None:
        channels = clips.shape[1]
        shape = (1, -1, 1, 1, 1)
        scale = torch.tensor(std or (1.0,) * channels, dtype=clips.dtype, device=clips.device).view(shape)
        shift = torch.tensor(mean or (0.0,) * channels, dtype=clips.dtype, device=clips.device).view(shape)
        clips = clips * scale + shift
    clips = clips / pixel_max
    view = torch.stack([_augment_clip(clip, generator, flip, spatial) for clip in clips]) * pixel_max
    return view if scale is None else (view - shift) / scale


def _uniform(generator: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _augment_clip(clip: torch.Tensor, generator: torch.Generator | None, flip: bool, spatial: bool) -> torch.Tensor:
    """clip: (C, T, H, W) in [0, 1]; one random draw applied to all T frames."""
    channels = clip.shape[0]
    out = clip
    if spatial:
        out = _crop_and_flip(clip, generator, flip)
    if channels == 3:  # colour ops only mean something for RGB (not for 2-channel flow)
        if _uniform(generator) < 0.8:
            out = out * _uniform(generator, 0.6, 1.4)  # brightness
            gray_mean = _luma(out).mean()
            out = (out - gray_mean) * _uniform(generator, 0.6, 1.4) + gray_mean  # contrast
            luma = _luma(out)
            out = (out - luma) * _uniform(generator, 0.6, 1.4) + luma  # saturation
            out = out.clamp(0, 1)
        if _uniform(generator) < 0.2:
            out = _luma(out).expand_as(out)
    return out.contiguous()


def _crop_and_flip(clip: torch.Tensor, generator: torch.Generator | None, flip: bool) -> torch.Tensor:
    _, _, height, width = clip.shape
    # Corner crop with scale jitter (TSN's multi-scale crop): side fractions from {1, .875, .75, .66},
    # drawn independently for height and width, at a corner or the centre, resized back.
    fractions = (1.0, 0.875, 0.75, 0.66)
    crop_h = max(1, int(height * fractions[int(_uniform(generator) * 4) % 4]))
    crop_w = max(1, int(width * fractions[int(_uniform(generator) * 4) % 4]))
    corners = (
        (0, 0),
        (0, width - crop_w),
        (height - crop_h, 0),
        (height - crop_h, width - crop_w),
        ((height - crop_h) // 2, (width - crop_w) // 2),
    )
    top, left = corners[int(_uniform(generator) * 5) % 5]
    out = clip[:, :, top : top + crop_h, left : left + crop_w]
    if (crop_h, crop_w) != (height, width):
        out = F.interpolate(out, size=(height, width), mode="bilinear", align_corners=False)
    if flip and _uniform(generator) < 0.5:
        out = out.flip(-1)
    return out


def _luma(clip: torch.Tensor) -> torch.Tensor:
    """(3, T, H, W) RGB -> (1, T, H, W) ITU-R 601 luma."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=clip.dtype, device=clip.device).view(3, 1, 1, 1)
    return (clip * weights).sum(0, keepdim=True)
