"""The loader's small C helpers (training/_*.c), compiled on first use and called through ctypes.

Each is built once per source version and platform with the system compiler (`cc`, or $CC) into a cache
folder (~/.cache/flowprep or $FLOWPREP_CACHE); workers racing to build it each write a temporary file and
rename it into place. Where one cannot be built (no compiler, no headers) `load` logs one line and returns
None, and its caller falls back to pure Python or OpenCV with the same results, slower.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import subprocess
import sysconfig
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("FLOWPREP_CACHE") or Path.home() / ".cache" / "flowprep")


def build(source: Path, libs: tuple[str, ...] = (), folder: Path | None = None) -> Path:
    """The shared library of `source` (atomic: workers race to build it)."""
    tag = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    folder = folder or cache_dir()
    lib = folder / f"{source.stem.lstrip('_')}-{tag}-{sysconfig.get_platform()}.so"
    if lib.is_file():
        return lib
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        out = Path(tmp) / lib.name
        cc = os.environ.get("CC", "cc")
        subprocess.run(
            [cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(source), *(f"-l{name}" for name in libs)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        out.replace(lib)
    return lib


def load(source: Path, symbol: str, argtypes: list, restype, libs: tuple[str, ...] = (), what: str = ""):
    """ctypes function `symbol` of `source`'s library, or None (logged once by the caller's cache)."""
    try:
        fn = getattr(ctypes.CDLL(str(build(source, libs))), symbol)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        log.info(
            "%s unavailable (%s%s); using the slower fallback",
            what or symbol,
            exc.__class__.__name__,
            f": {detail.decode(errors='replace').strip().splitlines()[-1]}" if detail.strip() else "",
        )
        return None
    fn.argtypes = argtypes
    fn.restype = restype
    return fn
