"""numba's disk cache of the kernels, keyed on the source of all the kernel files (`_numba_cache`).

A tiny package of two modules (a cached caller, and the callee it calls from another file) is compiled
into a fresh NUMBA_CACHE_DIR, then its callee edited: in a new process, the caller must return the
callee's new value under the shared stamp, and does return the old one under numba's per-file stamp
(which proves the test would catch a stale cache).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("numba")

from flowprep.flow import _numba_cache  # noqa: E402

_RUN = textwrap.dedent(
    """
    from pkg import caller
    print(caller.call(), sum(caller.call.stats.cache_hits.values()))
    """
)


def _package(root: Path, shared_stamp: bool) -> None:
    pkg = root / "pkg"
    pkg.mkdir()
    # as in flowprep: the group is registered before either module's functions are decorated
    init = "from pathlib import Path\n"
    if shared_stamp:
        init += (
            "from flowprep.flow._numba_cache import share_source_stamp\n"
            "share_source_stamp(Path(__file__).with_name(n) for n in ('caller.py', 'callee.py'))\n"
        )
    (pkg / "__init__.py").write_text(init)
    (pkg / "callee.py").write_text(
        "import numba\n\nVALUE = 1\n\n@numba.njit(cache=True)\ndef value():\n    return VALUE\n"
    )
    (pkg / "caller.py").write_text(
        "import numba\nfrom pkg.callee import value\n\n@numba.njit(cache=True)\ndef call():\n    return value() * 10\n"
    )


def _run(root: Path) -> tuple[int, int]:
    """A fresh process: (caller's result, its cache hits)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(root / "cache"), "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", _RUN], env=env, cwd=root, check=True, capture_output=True, text=True)
    result, hits = out.stdout.split()
    return int(result), int(hits)


@pytest.mark.parametrize("shared_stamp, after_edit", [(True, 20), (False, 10)])
def test_a_callee_edited_in_another_file_recompiles_its_caller(tmp_path, shared_stamp, after_edit):
    from numba.core import caching

    if not shared_stamp and hasattr(caching, "get_function_dependencies"):
        pytest.skip("this numba stamps a caller's callee files itself: its per-file cache is not stale")
    _package(tmp_path, shared_stamp)
    assert _run(tmp_path) == (10, 0)  # compiled, written to NUMBA_CACHE_DIR
    assert any((tmp_path / "cache").rglob("caller.call-*.nbi"))
    assert _run(tmp_path) == (10, 1)  # loaded from it
    callee = tmp_path / "pkg" / "callee.py"
    callee.write_text(callee.read_text().replace("VALUE = 1", "VALUE = 2"))
    result, hits = _run(tmp_path)
    assert result == after_edit  # numba's own stamp: the caller's cache is stale, the edit unseen
    assert hits == (0 if shared_stamp else 1)
    if shared_stamp:
        assert _run(tmp_path) == (20, 1)  # the recompiled caller was cached again


def test_every_kernel_file_is_in_the_group_and_uses_its_locator():
    from flowprep.flow import _median_networks, _numba_kernels, _numba_level, _numba_warp

    flow_dir = Path(_numba_cache.__file__).parent
    jitted = {p.name for p in flow_dir.glob("*.py") if "@_jit" in p.read_text() or "@_inline" in p.read_text()}
    assert jitted <= set(_numba_cache.KERNEL_FILES), jitted - set(_numba_cache.KERNEL_FILES)
    for kernel in (
        _numba_level.solve_level,
        _numba_kernels.inner_loop,
        _numba_warp.warp_framed,
        _median_networks.median5,
    ):
        locator = kernel._cache._impl._locator
        assert isinstance(locator, _numba_cache.GroupStampLocator), kernel
        assert locator.get_source_stamp().startswith("group-sha256:")
