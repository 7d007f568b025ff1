"""The box of a JPEG frame, decoded by libjpeg-turbo's partial decode (training/_jpegcrop.c via ctypes).

OpenCV, Pillow and simplejpeg decode whole frames only, and PyTurboJPEG needs a system libturbojpeg that
`pip` cannot install. The helper is compiled on first use (cc + the system libjpeg-turbo headers, about a
second) into a cache folder, and where it cannot be built (no compiler, no headers, a libjpeg without
jpeg_crop_scanline) the loader logs one line and decodes whole frames with OpenCV: the same pixels,
slower. FLOWPREP_NATIVE_JPEG=0 turns it off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("_jpegcrop.c")
_MESSAGE_LEN = 200


def cache_dir() -> Path:
    return Path(os.environ.get("FLOWPREP_CACHE") or Path.home() / ".cache" / "flowprep")


def build(source: Path = SOURCE, folder: Path | None = None) -> Path:
    """The helper's shared library, compiled once per source version and platform (atomic: workers race)."""
    tag = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    folder = folder or cache_dir()
    lib = folder / f"jpegcrop-{tag}-{sysconfig.get_platform()}.so"
    if lib.is_file():
        return lib
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        out = Path(tmp) / lib.name
        cc = os.environ.get("CC", "cc")
        subprocess.run(
            [cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(source), "-ljpeg"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        out.replace(lib)
    return lib


@functools.cache
def crop_decoder():
    """ctypes function `flowprep_decode_crop`, or None (logged once) where the helper cannot be built."""
    if os.environ.get("FLOWPREP_NATIVE_JPEG", "1") == "0":
        return None
    try:
        fn = ctypes.CDLL(str(build())).flowprep_decode_crop
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        log.info(
            "partial JPEG decode unavailable (%s%s); decoding whole frames with OpenCV",
            exc.__class__.__name__,
            f": {detail.decode(errors='replace').strip().splitlines()[-1]}" if detail.strip() else "",
        )
        return None
    fn.argtypes = [
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    fn.restype = ctypes.c_int
    return fn


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
