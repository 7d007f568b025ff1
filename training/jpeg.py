"""JPEG bytes -> the uint8 pixels of one crop box, resized to the clip side and maybe mirrored.

Two CPU decodes, both libjpeg-turbo:

- `exact` (`--decode cpu`): only the box's rows and columns (training/jpeg_native.py: libjpeg-turbo's
  partial decode through a small C helper), or, where that helper cannot be built, the whole frame with
  OpenCV and then the box. Both are pixel-identical to what the loader always did (tested).
- `reduced`: when the box is at least twice the output side (3D-ResNets' multi-scale crops, the 3- and
  10-crop tests' short-side squares), libjpeg's DCT scaling decodes at 1/2, 1/4 or 1/8 of the size
  (OpenCV's `IMREAD_REDUCED_*`), skipping most of the inverse DCT and colour conversion; the box, scaled by the
  same factor, is then resized to the output side. It changes pixels by a bounded amount (tests/test_fast_loader.py
  holds it under a mean absolute difference of 3 levels, max 32), so it is opt-in (`--decode cpu_reduced`).

The box must be a `training.data.CropBox`-like object with y0, x0, height, width, flip.
"""

from __future__ import annotations

import numpy as np

from .jpeg_native import decode_box

DECODES = ("cpu", "cpu_reduced", "gpu")
REDUCTIONS = (8, 4, 2)  # libjpeg's DCT scalings that OpenCV exposes, largest first


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ImportError(
            "CPU decode needs OpenCV, which is not installed: pip install opencv-python-headless (or --decode gpu)"
        ) from None
    return cv2


def _imread_flag(gray: bool, factor: int) -> int:
    cv2 = _cv2()

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
    cv2 = _cv2()

    img = cv2.imdecode(np.frombuffer(data, np.uint8), _imread_flag(gray, factor))
    if img is None:
        raise ValueError("corrupt JPEG")
    return img if gray else img[:, :, ::-1]  # OpenCV decodes BGR


def resize_box(img: np.ndarray, y0: int, x0: int, height: int, width: int, size: int) -> np.ndarray:
    """Cut the box, resize to size x size only when it differs (flow levels are resized as values, as MARS)."""
    cv2 = _cv2()

    out = img[y0 : y0 + height, x0 : x0 + width]
    if out.shape[0] != size or out.shape[1] != size:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_LINEAR)
    return out


def resample_reduced(img: np.ndarray, crop, size: int, factor: int) -> np.ndarray:
    """The box of a 1/factor decode, sampled at the very points the exact path's resize samples.

    cv2.resize maps output pixel x to source x0 + (x + 0.5) * width / size - 0.5; a 1/f decode's pixel
    centre u sits at source (u + 0.5) * f - 0.5. An affine warp with that map keeps the geometry exact
    (a box at an odd offset would otherwise shift by up to half a reduced pixel).
    """
    cv2 = _cv2()

    sx, sy = crop.width / size / factor, crop.height / size / factor
    tx = (crop.x0 + 0.5 * crop.width / size) / factor - 0.5
    ty = (crop.y0 + 0.5 * crop.height / size) / factor - 0.5
    warp = np.float32([[sx, 0, tx], [0, sy, ty]])
    return cv2.warpAffine(
        img, warp, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )


def decode_crop(data: bytes, crop, size: int, gray: bool, reduced: bool = False) -> np.ndarray:
    """uint8 (S,S) or (S,S,3): the crop box of a JPEG frame at side `size`, mirrored when crop.flip."""
    factor = reduction(crop.height, crop.width, size) if reduced else 1
    if factor == 1:
        box = decode_box(data, gray, crop.y0, crop.x0, crop.height, crop.width)  # None: no native helper
        if box is not None:
            out = resize_box(box, 0, 0, crop.height, crop.width, size)
        else:
            out = resize_box(decode_jpeg(data, gray), crop.y0, crop.x0, crop.height, crop.width, size)
    else:
        out = resample_reduced(decode_jpeg(data, gray, factor), crop, size, factor)
    return out[:, ::-1] if crop.flip else out
