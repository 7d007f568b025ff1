"""JPEG bytes -> the uint8 pixels of one crop box, resized to the clip side and maybe mirrored.

Two CPU decodes, both libjpeg-turbo through OpenCV (already a dependency; measured against simplejpeg
and Pillow in benchmarks/results/loader_cpu.md):

- `exact`: the whole frame, then the box: pixel-identical to what the loader always did.
- `reduced`: when the box is at least twice the output side (3D-ResNets' multi-scale crops, the 3- and
  10-crop tests' short-side squares), libjpeg's DCT scaling decodes at 1/2, 1/4 or 1/8 of the size
  (`IMREAD_REDUCED_*`), skipping most of the inverse DCT and colour conversion; the box, scaled by the
  same factor, is then resized to the output side. It changes pixels by a bounded amount (the tests
  hold it to a mean absolute difference under 2 levels), so it is opt-in (`--decode cpu_reduced`).

The box must be a `training.data.Crop`-like object with y0, x0, height, width, flip.
"""
from __future__ import annotations

import numpy as np

DECODES = ("cpu", "cpu_reduced", "gpu")
REDUCTIONS = (8, 4, 2)  # libjpeg's DCT scalings that OpenCV exposes, largest first


def _imread_flag(gray: bool, factor: int) -> int:
    import cv2

    if factor == 1:
        return cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
    name = f"IMREAD_REDUCED_{'GRAYSCALE' if gray else 'COLOR'}_{factor}"
    return getattr(cv2, name)


def reduction(box_height: int, box_width: int, size: int) -> int:
    """Largest DCT scaling (1, 2, 4, 8) that leaves the box at least `size` px on each side."""
    for factor in REDUCTIONS:
        if box_height >= size * factor and box_width >= size * factor:
            return factor
    return 1


def decode_jpeg(data: bytes, gray: bool, factor: int = 1) -> np.ndarray:
    """JPEG bytes -> uint8 (H/f,W/f) (gray) or (H/f,W/f,3) RGB; raises ValueError on corrupt data."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), _imread_flag(gray, factor))
    if img is None:
        raise ValueError("corrupt JPEG")
    return img if gray else img[:, :, ::-1]  # OpenCV decodes BGR


def resize_box(img: np.ndarray, y0: int, x0: int, height: int, width: int, size: int) -> np.ndarray:
    """Cut the box, resize to size x size only when it differs (flow levels are resized as values, as MARS)."""
    import cv2

    out = img[y0:y0 + height, x0:x0 + width]
    if out.shape[0] != size or out.shape[1] != size:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_LINEAR)
    return out


def decode_crop(data: bytes, crop, size: int, gray: bool, reduced: bool = False) -> np.ndarray:
    """uint8 (S,S) or (S,S,3): the crop box of a JPEG frame at side `size`, mirrored when crop.flip."""
    factor = reduction(crop.height, crop.width, size) if reduced else 1
    img = decode_jpeg(data, gray, factor)
    if factor == 1:
        out = resize_box(img, crop.y0, crop.x0, crop.height, crop.width, size)
    else:  # the box in reduced pixels: same corners, divided (libjpeg rounds the image size up)
        y0, x0 = crop.y0 // factor, crop.x0 // factor
        y1, x1 = -(-(crop.y0 + crop.height) // factor), -(-(crop.x0 + crop.width) // factor)
        out = resize_box(img, y0, x0, y1 - y0, x1 - x0, size)
    return out[:, ::-1] if crop.flip else out
