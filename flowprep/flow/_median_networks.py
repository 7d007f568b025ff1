"""cv::medianBlur for float images: exact 3x3 and 5x5 window medians as straight-line min/max code.

GENERATED below the marker by `python -m flowprep.flow._median_networks` (it rewrites this file); do not
edit by hand: tests/test_numba_tvl1.py checks the file equals what the generator writes.

Each kernel works a row in two vectorized passes. First the k values of each column of the row's k x k
windows are sorted (Batcher's network on k values), once per column instead of once per window that
contains it. Then each pixel's window, k presorted columns, goes through Batcher's odd-even merge sort
of k*k values pruned twice: comparators that never swap when the columns come in sorted (checked on
every 0-1 input with sorted columns: by the 0-1 principle a comparator that never swaps on those never
swaps on any real input either), then comparators whose outputs the middle one does not need. For 5x5
that is 146 min/max per pixel instead of 202 (plus 18 per column, shared by the 5 windows that read
it); for 3x3, 26 instead of 40 (plus 6). Straight-line code so that LLVM vectorizes the pixel loop
(`a if a < b else b` is one minps); a loop over a table of comparators would keep each pixel's values
in memory.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
_MARKER = "# ---- generated " + "below ----"


def column_sorted_median_network(k: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """The comparators (lo, hi, keep_min, keep_max) that take the median of a k x k window whose
    columns are already sorted. Value j*k + i is row i of column j (column-major: this order prunes
    more than row-major, 146 against 168 min/max at k = 5)."""
    from flowprep.flow.torch_tvl1 import _batcher_pairs

    n = k * k
    # wire masks over all 0-1 windows with sorted columns: bit v of wire j*k+i is row i of column j in
    # window v, whose column j holds zeros[j] zeros above its ones
    wires = [0] * n
    for v, zeros in enumerate(itertools.product(range(k + 1), repeat=k)):
        for j, z in enumerate(zeros):
            for i in range(z, k):
                wires[j * k + i] |= 1 << v
    swapping = []
    for lo, hi in _batcher_pairs(n):
        a, b = wires[lo], wires[hi]
        if a & ~b:  # some window has a 1 above a 0 here: the comparator does work
            swapping.append((lo, hi))
        wires[lo], wires[hi] = a & b, a | b
    needed, kept = {n // 2}, []
    for lo, hi in reversed(swapping):
        keep_min, keep_max = lo in needed, hi in needed
        if keep_min or keep_max:
            kept.append((lo, hi, keep_min, keep_max))
            needed |= {lo, hi}
    return tuple(reversed(kept))


def _comparators(network, indent: str) -> list[str]:
    """Straight-line source of a network (lo, hi, keep_min, keep_max) over values a0, a1, ..."""
    lines = []
    for lo, hi, keep_min, keep_max in network:
        a, b = f"a{lo}", f"a{hi}"
        low, high = f"{a} if {a} < {b} else {b}", f"{b} if {a} < {b} else {a}"
        if keep_min and keep_max:
            lines.append(f"{indent}{a}, {b} = {low}, {high}")
        else:
            lines.append(f"{indent}{a} = {low}" if keep_min else f"{indent}{b} = {high}")
    return lines


def render() -> str:
    """This module's source: everything above the marker as it is, then one kernel per window size."""
    from flowprep.flow.torch_tvl1 import _batcher_pairs

    lines = [Path(__file__).read_text().split(_MARKER)[0] + _MARKER]
    for k in (3, 5):
        r = k // 2
        network = column_sorted_median_network(k)
        n_ops = sum(int(keep_min) + int(keep_max) for _, _, keep_min, keep_max in network)
        column_sort = [(lo, hi, True, True) for lo, hi in _batcher_pairs(k)]
        lines += [
            "",
            "",
            "@_jit",
            f"def median{k}(padded, out):",
            f'    """out[:H, :W] = {k}x{k} medians of `padded` (H+{k - 1}, W+{k - 1}), the image with its border',
            f"    replicated by {r} (out may be wider: a padded plane): {len(column_sort)} comparators per",
            f'    column, {n_ops} min/max per pixel, min/max only, so exact."""',
            f"    h, w = padded.shape[0] - {k - 1}, padded.shape[1] - {k - 1}",
            f"    columns = np.empty(({k}, w + {k - 1}), np.float32)  # one row's sorted columns",
            "    for y in range(h):",
            *[f"        r{i} = padded[y + {i}]" for i in range(k)],
            *[f"        c{i} = columns[{i}]" for i in range(k)],
            f"        for x in range(w + {k - 1}):  # each column's {k} values, sorted",
        ]
        lines += [f"            a{i} = r{i}[x]" for i in range(k)]
        lines += _comparators(column_sort, " " * 12)
        lines += [f"            c{i}[x] = a{i}" for i in range(k)]
        lines.append("        orow = out[y]")
        lines.append("        for x in range(w):  # each window: its sorted columns, the pruned network")
        lines += [f"            a{j * k + i} = c{i}[x + {j}]" for j in range(k) for i in range(k)]
        lines += _comparators(network, " " * 12)
        lines.append(f"            orow[x] = a{k * k // 2}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    Path(__file__).write_text(render())

# ---- generated below ----


@_jit
def median3(padded, out):
    """out[:H, :W] = 3x3 medians of `padded` (H+2, W+2), the image with its border
    replicated by 1 (out may be wider: a padded plane): 3 comparators per
    column, 26 min/max per pixel, min/max only, so exact."""
    h, w = padded.shape[0] - 2, padded.shape[1] - 2
    columns = np.empty((3, w + 2), np.float32)  # one row's sorted columns
    for y in range(h):
        r0 = padded[y + 0]
        r1 = padded[y + 1]
        r2 = padded[y + 2]
        c0 = columns[0]
        c1 = columns[1]
        c2 = columns[2]
        for x in range(w + 2):  # each column's 3 values, sorted
            a0 = r0[x]
            a1 = r1[x]
            a2 = r2[x]
            a0, a1 = a0 if a0 < a1 else a1, a1 if a0 < a1 else a0
            a0, a2 = a0 if a0 < a2 else a2, a2 if a0 < a2 else a0
            a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
            c0[x] = a0
            c1[x] = a1
            c2[x] = a2
        orow = out[y]
        for x in range(w):  # each window: its sorted columns, the pruned network
            a0 = c0[x + 0]
            a1 = c1[x + 0]
            a2 = c2[x + 0]
            a3 = c0[x + 1]
            a4 = c1[x + 1]
            a5 = c2[x + 1]
            a6 = c0[x + 2]
            a7 = c1[x + 2]
            a8 = c2[x + 2]
            a2, a3 = a2 if a2 < a3 else a3, a3 if a2 < a3 else a2
            a0, a2 = a0 if a0 < a2 else a2, a2 if a0 < a2 else a0
            a4, a6 = a4 if a4 < a6 else a6, a6 if a4 < a6 else a4
            a5, a7 = a5 if a5 < a7 else a7, a7 if a5 < a7 else a5
            a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
            a5, a6 = a5 if a5 < a6 else a6, a6 if a5 < a6 else a5
            a4 = a4 if a0 < a4 else a0
            a1, a5 = a1 if a1 < a5 else a5, a5 if a1 < a5 else a1
            a2 = a2 if a2 < a6 else a6
            a3 = a3 if a3 < a7 else a7
            a2, a4 = a2 if a2 < a4 else a4, a4 if a2 < a4 else a2
            a3 = a3 if a3 < a5 else a5
            a2 = a2 if a1 < a2 else a1
            a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
            a4 = a4 if a4 < a8 else a8
            a4 = a4 if a2 < a4 else a2
            a4 = a4 if a3 < a4 else a3
            orow[x] = a4


@_jit
def median5(padded, out):
    """out[:H, :W] = 5x5 medians of `padded` (H+4, W+4), the image with its border
    replicated by 2 (out may be wider: a padded plane): 9 comparators per
    column, 146 min/max per pixel, min/max only, so exact."""
    h, w = padded.shape[0] - 4, padded.shape[1] - 4
    columns = np.empty((5, w + 4), np.float32)  # one row's sorted columns
    for y in range(h):
        r0 = padded[y + 0]
        r1 = padded[y + 1]
        r2 = padded[y + 2]
        r3 = padded[y + 3]
        r4 = padded[y + 4]
        c0 = columns[0]
        c1 = columns[1]
        c2 = columns[2]
        c3 = columns[3]
        c4 = columns[4]
        for x in range(w + 4):  # each column's 5 values, sorted
            a0 = r0[x]
            a1 = r1[x]
            a2 = r2[x]
            a3 = r3[x]
            a4 = r4[x]
            a0, a1 = a0 if a0 < a1 else a1, a1 if a0 < a1 else a0
            a2, a3 = a2 if a2 < a3 else a3, a3 if a2 < a3 else a2
            a0, a2 = a0 if a0 < a2 else a2, a2 if a0 < a2 else a0
            a1, a3 = a1 if a1 < a3 else a3, a3 if a1 < a3 else a1
            a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
            a0, a4 = a0 if a0 < a4 else a4, a4 if a0 < a4 else a0
            a2, a4 = a2 if a2 < a4 else a4, a4 if a2 < a4 else a2
            a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
            a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
            c0[x] = a0
            c1[x] = a1
            c2[x] = a2
            c3[x] = a3
            c4[x] = a4
        orow = out[y]
        for x in range(w):  # each window: its sorted columns, the pruned network
            a0 = c0[x + 0]
            a1 = c1[x + 0]
            a2 = c2[x + 0]
            a3 = c3[x + 0]
            a4 = c4[x + 0]
            a5 = c0[x + 1]
            a6 = c1[x + 1]
            a7 = c2[x + 1]
            a8 = c3[x + 1]
            a9 = c4[x + 1]
            a10 = c0[x + 2]
            a11 = c1[x + 2]
            a12 = c2[x + 2]
            a13 = c3[x + 2]
            a14 = c4[x + 2]
            a15 = c0[x + 3]
            a16 = c1[x + 3]
            a17 = c2[x + 3]
            a18 = c3[x + 3]
            a19 = c4[x + 3]
            a20 = c0[x + 4]
            a21 = c1[x + 4]
            a22 = c2[x + 4]
            a23 = c3[x + 4]
            a24 = c4[x + 4]
            a4, a5 = a4 if a4 < a5 else a5, a5 if a4 < a5 else a4
            a14, a15 = a14 if a14 < a15 else a15, a15 if a14 < a15 else a14
            a5, a7 = a5 if a5 < a7 else a7, a7 if a5 < a7 else a5
            a8, a10 = a8 if a8 < a10 else a10, a10 if a8 < a10 else a8
            a9, a11 = a9 if a9 < a11 else a11, a11 if a9 < a11 else a9
            a12, a14 = a12 if a12 < a14 else a14, a14 if a12 < a14 else a12
            a5, a6 = a5 if a5 < a6 else a6, a6 if a5 < a6 else a5
            a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
            a13, a14 = a13 if a13 < a14 else a14, a14 if a13 < a14 else a13
            a0, a4 = a0 if a0 < a4 else a4, a4 if a0 < a4 else a0
            a1, a5 = a1 if a1 < a5 else a5, a5 if a1 < a5 else a1
            a2, a6 = a2 if a2 < a6 else a6, a6 if a2 < a6 else a2
            a8, a12 = a8 if a8 < a12 else a12, a12 if a8 < a12 else a8
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
            a22, a24 = a22 if a22 < a24 else a24, a24 if a22 < a24 else a22
            a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
            a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
            a5, a6 = a5 if a5 < a6 else a6, a6 if a5 < a6 else a5
            a7, a8 = a7 if a7 < a8 else a8, a8 if a7 < a8 else a7
            a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
            a11, a12 = a11 if a11 < a12 else a12, a12 if a11 < a12 else a11
            a13 = a13 if a13 < a14 else a14
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
            orow[x] = a12
