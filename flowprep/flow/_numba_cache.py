"""numba's on-disk cache for the fused TV-L1's kernels, keyed on the source of ALL their files.

numba keys a cached function on its own file only (a stamp of that file's source): a cached caller
keeps the machine code it compiled with a callee from another file, and the values of that file's
global constants, after the callee's file changes (numba's documented limitation; numba PR #8359).
The kernels call across four files (`_numba_level` -> `_numba_kernels` -> `_numba_warp`,
`_median_networks`), so here each kernel file's stamp is one hash of every file of its group: editing
any of them recompiles all of them, and nothing stale is ever loaded.

The mechanism is a cache locator (numba's private `_CacheLocator`; see `_locator_classes`),
put first in numba's list of locators: for a file of a registered group it wraps the locator numba
would have picked (NUMBA_CACHE_DIR, else the package's __pycache__, else the user-wide cache: the
cache still lives where numba puts it and is written once per machine) and replaces only its source
stamp. Files outside every group get numba's own locators: other packages see no change.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable

import numba
from numba.core import caching

# file -> the sorted files of its group, every path os.path.realpath'ed
_GROUPS: dict[str, tuple[str, ...]] = {}


def _group_stamp(files: tuple[str, ...]) -> str:
    """sha256 over the group's file names and contents, in a fixed order. numba takes a function's stamp
    once, when the function is decorated: ~20 kernels a process, 0.1 ms each (~60 kB of source)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read())
        digest.update(b"\0")
    return "group-sha256:" + digest.hexdigest()


class GroupStampLocator(caching._CacheLocator):
    """The locator numba would use for a function (`inner`), with the group's stamp for its source."""

    def __init__(self, inner: caching._CacheLocator, files: tuple[str, ...]):
        self._inner = inner
        self._files = files

    def ensure_cache_path(self) -> None:
        self._inner.ensure_cache_path()

    def get_cache_path(self) -> str:
        return self._inner.get_cache_path()

    def get_disambiguator(self) -> str:
        return self._inner.get_disambiguator()

    def get_source_stamp(self) -> str:
        return _group_stamp(self._files)

    @classmethod
    def from_function(cls, py_func, py_file):
        files = _GROUPS.get(os.path.realpath(py_file))
        if files is None:
            return None  # not ours: numba's next locator takes it
        for locator_class in _locator_classes():
            if locator_class is not cls:
                inner = locator_class.from_function(py_func, py_file)
                if inner is not None:
                    return cls(inner, files)
        return None


def _locator_classes() -> list:
    """numba's list of locators, tried in order (`CacheImpl` in recent numba, `_CacheImpl` in older ones)."""
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    return impl._locator_classes


def share_source_stamp(paths: Iterable[str | os.PathLike]) -> None:
    """Key the cache of every numba function in these files on all of their sources. Call before the
    files' `cache=True` functions are decorated (numba picks a function's locator then)."""
    files = tuple(sorted(os.path.realpath(p) for p in paths))
    for path in files:
        _GROUPS[path] = files
    try:
        classes = _locator_classes()
    except AttributeError:  # a numba without the private API: its own stamps, stale callees possible
        warnings.warn(
            f"numba {numba.__version__} has no CacheImpl._locator_classes: flowprep's kernels are cached per "
            "file, and a kernel file changed in place may leave its callers stale (clear NUMBA_CACHE_DIR)",
            stacklevel=2,
        )
        return
    if GroupStampLocator not in classes:
        classes.insert(0, GroupStampLocator)


KERNEL_FILES = ("_numba_cache.py", "_numba_warp.py", "_numba_kernels.py", "_median_networks.py", "_numba_level.py")
share_source_stamp(os.path.join(os.path.dirname(__file__), name) for name in KERNEL_FILES)

# The kernels' decorator: one thread each (nogil: the backend runs pairs on threads), no bounds checks,
# numpy's float semantics, cached on disk under the group's stamp.
kernel_jit = numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
