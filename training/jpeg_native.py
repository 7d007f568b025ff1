"""The box of a JPEG frame, decoded by libjpeg-turbo's partial decode (training/_jpegcrop.c via ctypes).

OpenCV, Pillow and simplejpeg decode whole frames only, and PyTurboJPEG needs a system libturbojpeg that
`pip` cannot install. The helper is compiled on first use (training/native.py: cc + the system libjpeg-turbo
headers, about a second) into a cache folder, and where it cannot be built (no compiler, no headers, a libjpeg without
jpeg_crop_scanline) the loader logs one line and decodes whole frames with OpenCV: the same pixels,
slower. FLOWPREP_NATIVE_JPEG=0 turns it off.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import numpy as np

from .native import load

SOURCE = Path(__file__).with_name("_jpegcrop.c")
_MESSAGE_LEN = 200


@functools.cache
def crop_decoder():
    """ctypes function `flowprep_decode_crop`, or None (logged once) where the helper cannot be built."""
    if os.environ.get("FLOWPREP_NATIVE_JPEG", "1") == "0":
        return None
    c = ctypes
    argtypes = [c.c_char_p, c.c_ulong, c.c_int, c.c_int, c.c_int, c.c_int, c.c_int, c.c_void_p, c.c_char_p, c.c_int]
    return load(SOURCE, "flowprep_decode_crop", argtypes, c.c_int, libs=("jpeg",), what="partial JPEG decode")


def decode_box(data: bytes, gray: bool, y0: int, x0: int, height: int, width: int) -> np.ndarray | None:
    """uint8 (h,w) or (h,w,3) RGB of the box, or None when the helper is unavailable; ValueError on bad data."""
    fn = crop_decoder()
    if fn is None:
        return None
    out = np.empty((height, width) if gray else (height, width, 3), np.uint8)
    message = ctypes.create_string_buffer(_MESSAGE_LEN)
    if fn(data, len(data), int(gray), y0, x0, height, width, out.ctypes.data, message, _MESSAGE_LEN):
        raise ValueError(f"corrupt JPEG: {message.value.decode(errors='replace')}")
    return out
