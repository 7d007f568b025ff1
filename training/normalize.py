"""Loader clips -> network input, on the device: the loader ships uint8 (4x fewer bytes than float32 through
the worker pipes, the pinned buffers and the host-to-device copy) and the float conversion, the ActivityNet
mean (RGB) and the flow centring happen here, after the copy. A float clip (tests, synthetic input) is
taken as already normalised and passes through."""

from __future__ import annotations

import torch

from .data import ACTIVITYNET_MEAN_RGB, FLOW_CENTER_LEVEL


def normalize_clip(clip: torch.Tensor, modality: str) -> torch.Tensor:
    """uint8 (..,C,T,H,W) -> float32: RGB 0..255 minus the ActivityNet mean, flow levels minus 127.5."""
    if clip.dtype != torch.uint8:
        return clip
    x = clip.float()
    if modality.rstrip("0123456789") == "rgb":  # "rgb2": the second view of a twins sample
        mean = torch.tensor(ACTIVITYNET_MEAN_RGB, dtype=torch.float32, device=x.device)
        return x - mean.view(3, 1, 1, 1)
    return x - FLOW_CENTER_LEVEL


def model_input(batch: dict, key: str, device: torch.device) -> torch.Tensor:
    """batch[key] copied to `device` (asynchronously from pinned memory), then normalised there; with
    --decode gpu, batch[key] is a list of JpegClips that are decoded on `device` first."""
    clips = batch[key]
    if isinstance(clips, list):
        from .gpu_decode import decode_clips

        return normalize_clip(decode_clips(clips, device), key)
    return normalize_clip(clips.to(device, non_blocking=True), key)
