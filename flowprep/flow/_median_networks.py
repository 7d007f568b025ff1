"""cv::medianBlur for float images: exact 3x3 and 5x5 window medians as straight-line min/max code.

GENERATED below the marker by `python -m flowprep.flow._median_networks` (it rewrites this file); do not
edit by hand: tests/test_numba_tvl1.py checks the file equals what the generator writes. The comparators
are Batcher's odd-even merge sort pruned to the middle output (`torch_tvl1._median_network`, shared with
the torch backend), unrolled so that LLVM vectorizes the pixel loop (`a if a < b else b` is one minps);
a loop over a table of comparators would keep each pixel's values in memory.
"""
from __future__ import annotations

from pathlib import Path

import numba

_jit = numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
_MARKER = "# ---- generated " + "below ----"


def render() -> str:
    """This module's source: everything above the marker as it is, then one kernel per window size.

    Each kernel's pixel loop holds its window's comparators as straight-line code: a call to a
    25-argument helper is not inlined by LLVM (the loop then runs 15x slower), and numba's own
    inline="always" takes 40 s to compile it."""
    from flowprep.flow.torch_tvl1 import _median_network, median_network_source

    lines = [Path(__file__).read_text().split(_MARKER)[0] + _MARKER]
    for k in (3, 5):
        n = k * k
        lines += ["", "", "@_jit", f"def median{k}(padded, out):",
                  f'    """out (H,W) = {k}x{k} medians of `padded` (H+{k - 1}, W+{k - 1}), the image with its border',
                  f'    replicated by {k // 2}: {len(_median_network(n))} comparators, min/max only, so exact."""',
                  "    h, w = out.shape",
                  "    for y in range(h):",
                  *[f"        r{i} = padded[y + {i}]" for i in range(k)],
                  "        for x in range(w):"]
        lines += [f"            a{i * k + j} = r{i}[x + {j}]" for i in range(k) for j in range(k)]
        lines += median_network_source(n, "{a} if {a} < {b} else {b}", "{b} if {a} < {b} else {a}", " " * 12)
        lines.append(f"            out[y, x] = a{n // 2}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    Path(__file__).write_text(render())

# ---- generated below ----


@_jit
def median3(padded, out):
    """out (H,W) = 3x3 medians of `padded` (H+2, W+2), the image with its border
    replicated by 1: 24 comparators, min/max only, so exact."""
    h, w = out.shape
    for y in range(h):
        r0 = padded[y + 0]
        r1 = padded[y + 1]
        r2 = padded[y + 2]
        for x in range(w):
            a0 = r0[x + 0]
            a1 = r0[x + 1]
            a2 = r0[x + 2]
            a3 = r1[x + 0]
            a4 = r1[x + 1]
            a5 = r1[x + 2]
            a6 = r2[x + 0]
            a7 = r2[x + 1]
            a8 = r2[x + 2]
            a0, a1 = a0 if a0 < a1 else a1, a1 if a0 < a1 else a0
            a2, a3 = a2 if a2 < a3 else a3, a3 if a2 < a3 else a2
            a4, a5 = a4 if a4 < a5 else a5, a5 if a4 < a5 else a4
            a6, a7 = a6 if a6 < a7 else a7, a7 if a6 < a7 else a6
            a0, a2 = a0 if a0 < a2 else a2, a2 if a0 < a2 else a0
            a1, a3 = a1 if a1 < a3 else a3, a3 if a1 < a3 else a1
            a4, a6 = a4 if a4 < a6 else a6, a6 if a4 < a6 else a4
            a5, a7 = a5 if a5 < a7 else a7, a7 if a5 < a7 else a5
            a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
            a5, a6 = a5 if a5 < a6 else a6, a6 if a5 < a6 else a5
            a0, a4 = a0 if a0 < a4 else a4, a4 if a0 < a4 else a0
            a1, a5 = a1 if a1 < a5 else a5, a5 if a1 < a5 else a1
            a2, a6 = a2 if a2 < a6 else a6, a6 if a2 < a6 else a2
            a3 = a3 if a3 < a7 else a7
            a2, a4 = a2 if a2 < a4 else a4, a4 if a2 < a4 else a2
            a3, a5 = a3 if a3 < a5 else a5, a5 if a3 < a5 else a3
            a2 = a2 if a1 < a2 else a1
            a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
            a5 = a5 if a5 < a6 else a6
            a8 = a8 if a0 < a8 else a0
            a4 = a4 if a4 < a8 else a8
            a4 = a4 if a2 < a4 else a2
            a3 = a3 if a3 < a5 else a5
            a4 = a4 if a3 < a4 else a3
            out[y, x] = a4


@_jit
def median5(padded, out):
    """out (H,W) = 5x5 medians of `padded` (H+4, W+4), the image with its border
    replicated by 2: 113 comparators, min/max only, so exact."""
    h, w = out.shape
    for y in range(h):
        r0 = padded[y + 0]
        r1 = padded[y + 1]
        r2 = padded[y + 2]
        r3 = padded[y + 3]
        r4 = padded[y + 4]
        for x in range(w):
            a0 = r0[x + 0]
            a1 = r0[x + 1]
            a2 = r0[x + 2]
            a3 = r0[x + 3]
            a4 = r0[x + 4]
            a5 = r1[x + 0]
            a6 = r1[x + 1]
            a7 = r1[x + 2]
            a8 = r1[x + 3]
            a9 = r1[x + 4]
            a10 = r2[x + 0]
            a11 = r2[x + 1]
            a12 = r2[x + 2]
            a13 = r2[x + 3]
            a14 = r2[x + 4]
            a15 = r3[x + 0]
            a16 = r3[x + 1]
            a17 = r3[x + 2]
            a18 = r3[x + 3]
            a19 = r3[x + 4]
            a20 = r4[x + 0]
            a21 = r4[x + 1]
            a22 = r4[x + 2]
            a23 = r4[x + 3]
            a24 = r4[x + 4]
            a0, a1 = a0 if a0 < a1 else a1, a1 if a0 < a1 else a0
            a2, a3 = a2 if a2 < a3 else a3, a3 if a2 < a3 else a2
            a4, a5 = a4 if a4 < a5 else a5, a5 if a4 < a5 else a4
            a6, a7 = a6 if a6 < a7 else a7, a7 if a6 < a7 else a6
            a8, a9 = a8 if a8 < a9 else a9, a9 if a8 < a9 else a8
            a10, a11 = a10 if a10 < a11 else a11, a11 if a10 < a11 else a10
            a12, a13 = a12 if a12 < a13 else a13, a13 if a12 < a13 else a12
            a14, a15 = a14 if a14 < a15 else a15, a15 if a14 < a15 else a14
            a16, a17 = a16 if a16 < a17 else a17, a17 if a16 < a17 else a16
            a18, a19 = a18 if a18 < a19 else a19, a19 if a18 < a19 else a18
            a20, a21 = a20 if a20 < a21 else a21, a21 if a20 < a21 else a20
            a22, a23 = a22 if a22 < a23 else a23, a23 if a22 < a23 else a22
            a0, a2 = a0 if a0 < a2 else a2, a2 if a0 < a2 else a0
            a1, a3 = a1 if a1 < a3 else a3, a3 if a1 < a3 else a1
            a4, a6 = a4 if a4 < a6 else a6, a6 if a4 < a6 else a4
            a5, a7 = a5 if a5 < a7 else a7, a7 if a5 < a7 else a5
            a8, a10 = a8 if a8 < a10 else a10, a10 if a8 < a10 else a8
            a9, a11 = a9 if a9 < a11 else a11, a11 if a9 < a11 else a9
            a12, a14 = a12 if a12 < a14 else a14, a14 if a12 < a14 else a12
            a13, a15 = a13 if a13 < a15 else a15, a15 if a13 < a15 else a13
            a16, a18 = a16 if a16 < a18 else a18, a18 if a16 < a18 else a16
            a17, a19 = a17 if a17 < a19 else a19, a19 if a17 < a19 else a17
            a20, a22 = a20 if a20 < a22 else a22, a22 if a20 < a22 else a20
            a21, a23 = a21 if a21 < a23 else a23, a23 if a21 < a23 else a21
            a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
            a5, a6 = a5 if a5 < a6 else a6, a6 if a5 < a6 else a5
            a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
            a13, a14 = a13 if a13 < a14 else a14, a14 if a13 < a14 else a13
            a17, a18 = a17 if a17 < a18 else a18, a18 if a17 < a18 else a17
            a21, a22 = a21 if a21 < a22 else a22, a22 if a21 < a22 else a21
            a0, a4 = a0 if a0 < a4 else a4, a4 if a0 < a4 else a0
            a1, a5 = a1 if a1 < a5 else a5, a5 if a1 < a5 else a1
            a2, a6 = a2 if a2 < a6 else a6, a6 if a2 < a6 else a2
            a3, a7 = a3 if a3 < a7 else a7, a7 if a3 < a7 else a3
            a8, a12 = a8 if a8 < a12 else a12, a12 if a8 < a12 else a8
            a9, a13 = a9 if a9 < a13 else a13, a13 if a9 < a13 else a9
            a10, a14 = a10 if a10 < a14 else a14, a14 if a10 < a14 else a10
            a11, a15 = a11 if a11 < a15 else a15, a15 if a11 < a15 else a11
            a16, a20 = a16 if a16 < a20 else a20, a20 if a16 < a20 else a16
            a17, a21 = a17 if a17 < a21 else a21, a21 if a17 < a21 else a17
            a18, a22 = a18 if a18 < a22 else a22, a22 if a18 < a22 else a18
            a19, a23 = a19 if a19 < a23 else a23, a23 if a19 < a23 else a19
            a2, a4 = a2 if a2 < a4 else a4, a4 if a2 < a4 else a2
            a3, a5 = a3 if a3 < a5 else a5, a5 if a3 < a5 else a3
            a10, a12 = a10 if a10 < a12 else a12, a12 if a10 < a12 else a10
            a11, a13 = a11 if a11 < a13 else a13, a13 if a11 < a13 else a11
            a18, a20 = a18 if a18 < a20 else a20, a20 if a18 < a20 else a18
            a19, a21 = a19 if a19 < a21 else a21, a21 if a19 < a21 else a19
            a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
            a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
            a5, a6 = a5 if a5 < a6 else a6, a6 if a5 < a6 else a5
            a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
            a11, a12 = a11 if a11 < a12 else a12, a12 if a11 < a12 else a11
            a13, a14 = a13 if a13 < a14 else a14, a14 if a13 < a14 else a13
            a17, a18 = a17 if a17 < a18 else a18, a18 if a17 < a18 else a17
            a19, a20 = a19 if a19 < a20 else a20, a20 if a19 < a20 else a19
            a21, a22 = a21 if a21 < a22 else a22, a22 if a21 < a22 else a21
            a0, a8 = a0 if a0 < a8 else a8, a8 if a0 < a8 else a0
            a1, a9 = a1 if a1 < a9 else a9, a9 if a1 < a9 else a1
            a2, a10 = a2 if a2 < a10 else a10, a10 if a2 < a10 else a2
            a3, a11 = a3 if a3 < a11 else a11, a11 if a3 < a11 else a3
            a4, a12 = a4 if a4 < a12 else a12, a12 if a4 < a12 else a4
            a5, a13 = a5 if a5 < a13 else a13, a13 if a5 < a13 else a5
            a6, a14 = a6 if a6 < a14 else a14, a14 if a6 < a14 else a6
            a7 = a7 if a7 < a15 else a15
            a16, a24 = a16 if a16 < a24 else a24, a24 if a16 < a24 else a16
            a4, a8 = a4 if a4 < a8 else a8, a8 if a4 < a8 else a4
            a5, a9 = a5 if a5 < a9 else a9, a9 if a5 < a9 else a5
            a6, a10 = a6 if a6 < a10 else a10, a10 if a6 < a10 else a6
            a7, a11 = a7 if a7 < a11 else a11, a11 if a7 < a11 else a7
            a20, a24 = a20 if a20 < a24 else a24, a24 if a20 < a24 else a20
            a2, a4 = a2 if a2 < a4 else a4, a4 if a2 < a4 else a2
            a3, a5 = a3 if a3 < a5 else a5, a5 if a3 < a5 else a3
            a6, a8 = a6 if a6 < a8 else a8, a8 if a6 < a8 else a6
            a7, a9 = a7 if a7 < a9 else a9, a9 if a7 < a9 else a7
            a10, a12 = a10 if a10 < a12 else a12, a12 if a10 < a12 else a10
            a11, a13 = a11 if a11 < a13 else a13, a13 if a11 < a13 else a11
            a18, a20 = a18 if a18 < a20 else a20, a20 if a18 < a20 else a18
            a19, a21 = a19 if a19 < a21 else a21, a21 if a19 < a21 else a19
            a22, a24 = a22 if a22 < a24 else a24, a24 if a22 < a24 else a22
            a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
            a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
            a5, a6 = a5 if a5 < a6 else a6, a6 if a5 < a6 else a5
            a7, a8 = a7 if a7 < a8 else a8, a8 if a7 < a8 else a7
            a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
            a11, a12 = a11 if a11 < a12 else a12, a12 if a11 < a12 else a11
            a13 = a13 if a13 < a14 else a14
            a17, a18 = a17 if a17 < a18 else a18, a18 if a17 < a18 else a17
            a19, a20 = a19 if a19 < a20 else a20, a20 if a19 < a20 else a19
            a21, a22 = a21 if a21 < a22 else a22, a22 if a21 < a22 else a21
            a23, a24 = a23 if a23 < a24 else a24, a24 if a23 < a24 else a23
            a16 = a16 if a0 < a16 else a0
            a17 = a17 if a1 < a17 else a1
            a18 = a18 if a2 < a18 else a2
            a19 = a19 if a3 < a19 else a3
            a20 = a20 if a4 < a20 else a4
            a21 = a21 if a5 < a21 else a5
            a6 = a6 if a6 < a22 else a22
            a7 = a7 if a7 < a23 else a23
            a8 = a8 if a8 < a24 else a24
            a16 = a16 if a8 < a16 else a8
            a17 = a17 if a9 < a17 else a9
            a10 = a10 if a10 < a18 else a18
            a11 = a11 if a11 < a19 else a19
            a12 = a12 if a12 < a20 else a20
            a13 = a13 if a13 < a21 else a21
            a10 = a10 if a6 < a10 else a6
            a11 = a11 if a7 < a11 else a7
            a12 = a12 if a12 < a16 else a16
            a13 = a13 if a13 < a17 else a17
            a12 = a12 if a10 < a12 else a10
            a11 = a11 if a11 < a13 else a13
            a12 = a12 if a11 < a12 else a11
            out[y, x] = a12
