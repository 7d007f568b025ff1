"""`--decode gpu`: the workers only read and select JPEG bytes; the GPU decodes them in batches (nvJPEG,
through `torchvision.io.decode_jpeg(device="cuda")`), then crops, resizes and flips there.

A worker yields a `JpegClip` (the clip's frame bytes and its crop box) where the CPU path yields pixels;
`collate_clips` keeps them as lists in the batch; `training.normalize.model_input` sees the list and calls
`decode_clips`, which returns the same uint8 (B,C,T,S,S) the CPU path would have shipped (equal up to the
two JPEG decoders' rounding and the resize's), then normalises as usual. torchvision is imported only
here, on first use; without it the run stops with one line saying what to install.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class JpegClip:
    """One clip's JPEG bytes, undecoded: RGB frames t..t+T-1, or flow x frames then flow y frames."""

    kind: str  # "rgb" | "flow"
    jpegs: tuple[bytes, ...]  # T (rgb) or 2T (flow: x then y)
    box: tuple[int, int, int, int]  # y0, x0, height, width in the source frame (px)
    flip: bool
    size: int  # output side S, px


def collate_clips(batch: list[dict]) -> dict:
    """default_collate, except that JpegClip values stay a list (one per sample) for the GPU to decode."""
    from torch.utils.data import default_collate

    lazy = {k for k, v in batch[0].items() if isinstance(v, JpegClip)}
    out = default_collate([{k: v for k, v in item.items() if k not in lazy} for item in batch])
    out.update({k: [item[k] for item in batch] for k in lazy})
    return out


def decode_frames(jpegs: list[bytes], gray: bool, device: torch.device) -> list[torch.Tensor]:
    """JPEG bytes -> uint8 (C,H,W) tensors on `device`, decoded in one batched call (nvJPEG on CUDA)."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        raise ImportError(
            "--decode gpu needs torchvision (torchvision.io.decode_jpeg, nvJPEG): pip install "
            "torchvision matching your torch"
        ) from None
    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in jpegs]
    mode = ImageReadMode.GRAY if gray else ImageReadMode.RGB
    return decode_jpeg(data, mode=mode, device=device)


def crop_resize_flip(frames: torch.Tensor, box: tuple[int, int, int, int], flip: bool, size: int) -> torch.Tensor:
    """uint8 (N,C,H,W) -> uint8 (N,C,S,S): the box, bilinear to size x size when it differs (cv2 INTER_LINEAR's
    half-pixel centres, no antialias), mirrored when flip."""
    y0, x0, height, width = box
    out = frames[:, :, y0 : y0 + height, x0 : x0 + width]
    if height != size or width != size:
        out = F.interpolate(out.float(), size=(size, size), mode="bilinear", align_corners=False)
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    return out.flip(-1) if flip else out


def decode_clips(clips: list[JpegClip], device: torch.device) -> torch.Tensor:
    """A batch of JpegClips -> uint8 (B,C,T,S,S) on `device`; flow x is negated on a flip (q -> 255 - q)."""
    kind = clips[0].kind
    frames = decode_frames([b for clip in clips for b in clip.jpegs], kind == "flow", device)
    out, at = [], 0
    for clip in clips:
        n = len(clip.jpegs)
        stacked = crop_resize_flip(torch.stack(frames[at : at + n]), clip.box, clip.flip, clip.size)  # (n,1|3,S,S)
        at += n
        if kind == "flow":
            t = n // 2
            levels_x, levels_y = stacked[:t, 0], stacked[t:, 0]
            if clip.flip:
                levels_x = 255 - levels_x  # mirrored image: x motion reverses (flowprep.format.flip_flow_x_levels)
            out.append(torch.stack([levels_x, levels_y]))  # (2,T,S,S)
        else:
            out.append(stacked.permute(1, 0, 2, 3))  # (3,T,S,S)
    return torch.stack(out)
