"""Exact 3x3 and 5x5 medians as straight-line min/max code, for the numba kernels (`_numba_kernels`).

GENERATED below the marker by `python -m flowprep.flow._median_networks` (it rewrites this file); do not
edit by hand: tests/test_numba_tvl1.py checks the file equals what the generator writes. The comparators
are Batcher's odd-even merge sort pruned to the middle output (`torch_tvl1._median_network`, shared with
the torch backend). They are unrolled because numba vectorizes a caller's pixel loop only over
straight-line code; a loop over a table of comparators keeps each pixel's values in memory.
"""
from __future__ import annotations

from pathlib import Path

import numba

_inline = numba.njit(inline="always", cache=True)


@_inline
def _lo(a, b):
    return a if a < b else b  # x86 minps semantics; Python's min() checks NaNs and does not vectorize


@_inline
def _hi(a, b):
    return b if a < b else a
_MARKER = "# ---- generated " + "below ----"


def render() -> str:
    """This module's source: everything above the marker as it is, then one function per window."""
    from flowprep.flow.torch_tvl1 import _median_network

    lines = [Path(__file__).read_text().split(_MARKER)[0] + _MARKER]
    for n in (9, 25):
        lines += ["", "", "@_inline", f"def median_of_{n}({', '.join(f'a{i}' for i in range(n))}):"]
        for lo, hi, keep_min, keep_max in _median_network(n):
            if keep_min and keep_max:
                lines.append(f"    a{lo}, a{hi} = _lo(a{lo}, a{hi}), _hi(a{lo}, a{hi})")
            elif keep_min:
                lines.append(f"    a{lo} = _lo(a{lo}, a{hi})")
            else:
                lines.append(f"    a{hi} = _hi(a{lo}, a{hi})")
        lines.append(f"    return a{n // 2}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    Path(__file__).write_text(render())

# ---- generated below ----


@_inline
def median_of_9(a0, a1, a2, a3, a4, a5, a6, a7, a8):
    a0, a1 = _lo(a0, a1), _hi(a0, a1)
    a2, a3 = _lo(a2, a3), _hi(a2, a3)
    a4, a5 = _lo(a4, a5), _hi(a4, a5)
    a6, a7 = _lo(a6, a7), _hi(a6, a7)
    a0, a2 = _lo(a0, a2), _hi(a0, a2)
    a1, a3 = _lo(a1, a3), _hi(a1, a3)
    a4, a6 = _lo(a4, a6), _hi(a4, a6)
    a5, a7 = _lo(a5, a7), _hi(a5, a7)
    a1, a2 = _lo(a1, a2), _hi(a1, a2)
    a5, a6 = _lo(a5, a6), _hi(a5, a6)
    a0, a4 = _lo(a0, a4), _hi(a0, a4)
    a1, a5 = _lo(a1, a5), _hi(a1, a5)
    a2, a6 = _lo(a2, a6), _hi(a2, a6)
    a3 = _lo(a3, a7)
    a2, a4 = _lo(a2, a4), _hi(a2, a4)
    a3, a5 = _lo(a3, a5), _hi(a3, a5)
    a2 = _hi(a1, a2)
    a3, a4 = _lo(a3, a4), _hi(a3, a4)
    a5 = _lo(a5, a6)
    a8 = _hi(a0, a8)
    a4 = _lo(a4, a8)
    a4 = _hi(a2, a4)
    a3 = _lo(a3, a5)
    a4 = _hi(a3, a4)
    return a4


@_inline
def median_of_25(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, a18, a19, a20, a21, a22, a23, a24):
    a0, a1 = _lo(a0, a1), _hi(a0, a1)
    a2, a3 = _lo(a2, a3), _hi(a2, a3)
    a4, a5 = _lo(a4, a5), _hi(a4, a5)
    a6, a7 = _lo(a6, a7), _hi(a6, a7)
    a8, a9 = _lo(a8, a9), _hi(a8, a9)
    a10, a11 = _lo(a10, a11), _hi(a10, a11)
    a12, a13 = _lo(a12, a13), _hi(a12, a13)
    a14, a15 = _lo(a14, a15), _hi(a14, a15)
    a16, a17 = _lo(a16, a17), _hi(a16, a17)
    a18, a19 = _lo(a18, a19), _hi(a18, a19)
    a20, a21 = _lo(a20, a21), _hi(a20, a21)
    a22, a23 = _lo(a22, a23), _hi(a22, a23)
    a0, a2 = _lo(a0, a2), _hi(a0, a2)
    a1, a3 = _lo(a1, a3), _hi(a1, a3)
    a4, a6 = _lo(a4, a6), _hi(a4, a6)
    a5, a7 = _lo(a5, a7), _hi(a5, a7)
    a8, a10 = _lo(a8, a10), _hi(a8, a10)
    a9, a11 = _lo(a9, a11), _hi(a9, a11)
    a12, a14 = _lo(a12, a14), _hi(a12, a14)
    a13, a15 = _lo(a13, a15), _hi(a13, a15)
    a16, a18 = _lo(a16, a18), _hi(a16, a18)
    a17, a19 = _lo(a17, a19), _hi(a17, a19)
    a20, a22 = _lo(a20, a22), _hi(a20, a22)
    a21, a23 = _lo(a21, a23), _hi(a21, a23)
    a1, a2 = _lo(a1, a2), _hi(a1, a2)
    a5, a6 = _lo(a5, a6), _hi(a5, a6)
    a9, a10 = _lo(a9, a10), _hi(a9, a10)
    a13, a14 = _lo(a13, a14), _hi(a13, a14)
    a17, a18 = _lo(a17, a18), _hi(a17, a18)
    a21, a22 = _lo(a21, a22), _hi(a21, a22)
    a0, a4 = _lo(a0, a4), _hi(a0, a4)
    a1, a5 = _lo(a1, a5), _hi(a1, a5)
    a2, a6 = _lo(a2, a6), _hi(a2, a6)
    a3, a7 = _lo(a3, a7), _hi(a3, a7)
    a8, a12 = _lo(a8, a12), _hi(a8, a12)
    a9, a13 = _lo(a9, a13), _hi(a9, a13)
    a10, a14 = _lo(a10, a14), _hi(a10, a14)
    a11, a15 = _lo(a11, a15), _hi(a11, a15)
    a16, a20 = _lo(a16, a20), _hi(a16, a20)
    a17, a21 = _lo(a17, a21), _hi(a17, a21)
    a18, a22 = _lo(a18, a22), _hi(a18, a22)
    a19, a23 = _lo(a19, a23), _hi(a19, a23)
    a2, a4 = _lo(a2, a4), _hi(a2, a4)
    a3, a5 = _lo(a3, a5), _hi(a3, a5)
    a10, a12 = _lo(a10, a12), _hi(a10, a12)
    a11, a13 = _lo(a11, a13), _hi(a11, a13)
    a18, a20 = _lo(a18, a20), _hi(a18, a20)
    a19, a21 = _lo(a19, a21), _hi(a19, a21)
    a1, a2 = _lo(a1, a2), _hi(a1, a2)
    a3, a4 = _lo(a3, a4), _hi(a3, a4)
    a5, a6 = _lo(a5, a6), _hi(a5, a6)
    a9, a10 = _lo(a9, a10), _hi(a9, a10)
    a11, a12 = _lo(a11, a12), _hi(a11, a12)
    a13, a14 = _lo(a13, a14), _hi(a13, a14)
    a17, a18 = _lo(a17, a18), _hi(a17, a18)
    a19, a20 = _lo(a19, a20), _hi(a19, a20)
    a21, a22 = _lo(a21, a22), _hi(a21, a22)
    a0, a8 = _lo(a0, a8), _hi(a0, a8)
    a1, a9 = _lo(a1, a9), _hi(a1, a9)
    a2, a10 = _lo(a2, a10), _hi(a2, a10)
    a3, a11 = _lo(a3, a11), _hi(a3, a11)
    a4, a12 = _lo(a4, a12), _hi(a4, a12)
    a5, a13 = _lo(a5, a13), _hi(a5, a13)
    a6, a14 = _lo(a6, a14), _hi(a6, a14)
    a7 = _lo(a7, a15)
    a16, a24 = _lo(a16, a24), _hi(a16, a24)
    a4, a8 = _lo(a4, a8), _hi(a4, a8)
    a5, a9 = _lo(a5, a9), _hi(a5, a9)
    a6, a10 = _lo(a6, a10), _hi(a6, a10)
    a7, a11 = _lo(a7, a11), _hi(a7, a11)
    a20, a24 = _lo(a20, a24), _hi(a20, a24)
    a2, a4 = _lo(a2, a4), _hi(a2, a4)
    a3, a5 = _lo(a3, a5), _hi(a3, a5)
    a6, a8 = _lo(a6, a8), _hi(a6, a8)
    a7, a9 = _lo(a7, a9), _hi(a7, a9)
    a10, a12 = _lo(a10, a12), _hi(a10, a12)
    a11, a13 = _lo(a11, a13), _hi(a11, a13)
    a18, a20 = _lo(a18, a20), _hi(a18, a20)
    a19, a21 = _lo(a19, a21), _hi(a19, a21)
    a22, a24 = _lo(a22, a24), _hi(a22, a24)
    a1, a2 = _lo(a1, a2), _hi(a1, a2)
    a3, a4 = _lo(a3, a4), _hi(a3, a4)
    a5, a6 = _lo(a5, a6), _hi(a5, a6)
    a7, a8 = _lo(a7, a8), _hi(a7, a8)
    a9, a10 = _lo(a9, a10), _hi(a9, a10)
    a11, a12 = _lo(a11, a12), _hi(a11, a12)
    a13 = _lo(a13, a14)
    a17, a18 = _lo(a17, a18), _hi(a17, a18)
    a19, a20 = _lo(a19, a20), _hi(a19, a20)
    a21, a22 = _lo(a21, a22), _hi(a21, a22)
    a23, a24 = _lo(a23, a24), _hi(a23, a24)
    a16 = _hi(a0, a16)
    a17 = _hi(a1, a17)
    a18 = _hi(a2, a18)
    a19 = _hi(a3, a19)
    a20 = _hi(a4, a20)
    a21 = _hi(a5, a21)
    a6 = _lo(a6, a22)
    a7 = _lo(a7, a23)
    a8 = _lo(a8, a24)
    a16 = _hi(a8, a16)
    a17 = _hi(a9, a17)
    a10 = _lo(a10, a18)
    a11 = _lo(a11, a19)
    a12 = _lo(a12, a20)
    a13 = _lo(a13, a21)
    a10 = _hi(a6, a10)
    a11 = _hi(a7, a11)
    a12 = _lo(a12, a16)
    a13 = _lo(a13, a17)
    a12 = _hi(a10, a12)
    a11 = _lo(a11, a13)
    a12 = _hi(a11, a12)
    return a12
