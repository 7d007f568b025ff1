"""cv::medianBlur for float images: exact 3x3 and 5x5 window medians as straight-line min/max code.

GENERATED below the marker by `python -m flowprep.flow._median_networks` (it rewrites this file); do not
edit by hand: tests/test_numba_tvl1.py checks the file equals what the generator writes.

Each kernel works a row in two vectorized passes. First the k values of each column of the row's k x k
windows are sorted (Batcher's network on k values), once per column instead of once per window that
contains it. Then the windows go through Batcher's odd-even merge sort pruned twice: comparators that
never swap when the columns come in sorted (checked on every 0-1 input with sorted columns: by the 0-1
principle a comparator that never swaps on those never swaps on any real input either), then
comparators whose outputs the wanted ones do not need. Straight-line code so that LLVM vectorizes the
pixel loop (`a if a < b else b` is one minps); a loop over a table of comparators would keep each
pixel's values in memory.

3x3: each window alone, 26 min/max per pixel instead of 40 (plus 6 per column). 5x5: two neighbouring
windows at a time. Pixels 2q and 2q+1 share four columns (20 values); the median of either window, the
13th of 25, is the 6th of the shared values' ranks 8..13 and its own fifth column, since 7 shared values
lie below those ranks and 7 above whatever that column holds. So the shared ranks 8..13 are taken once
(108 min/max, `pair_network`), then each pixel merges them with its column: the 6th of two sorted
lists, min over i of max(shared_i, own_(6-i)), 10 min/max. 64 per pixel instead of the single window's
146 (plus 18 per column); the row's sorted columns go to a scratch of even and odd columns, so that a
pair's columns are consecutive elements at compile-time offsets of one buffer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from flowprep.flow._numba_cache import kernel_jit as _jit  # cached on the source of all kernel files

_MARKER = "# ---- generated " + "below ----"
Network = tuple[tuple[int, int, bool, bool], ...]  # comparators (lo, hi, keep_min, keep_max)
# median5's scratch: a chunk of up to _CHUNK pairs of columns, segments _SEG floats apart (compile-time
# offsets from one base: LLVM proves the pixel loop's loads apart from each other without runtime checks)
_CHUNK = 256
_SEG = _CHUNK + 8
_EVEN, _ODD = 0, 5  # the first segment of the even columns' 5 sorted rows, of the odd ones'


def column_sorted_network(k: int, columns: int, wanted: Iterable[int], row_major: bool = False) -> Network:
    """The comparators (lo, hi, keep_min, keep_max) that put the `wanted` ranks (0-based) of `columns`
    already sorted columns of k values on the wires of those numbers. Row i of column j is wire
    j*k + i (column-major) or i*columns + j (row-major): whichever prunes more."""
    from flowprep.flow.torch_tvl1 import _batcher_pairs

    n = k * columns
    # wire masks over all 0-1 inputs with sorted columns: bit v of a wire is its value in input v,
    # whose column j holds zeros[j] zeros above its ones
    wires = [0] * n
    for v, zeros in enumerate(itertools.product(range(k + 1), repeat=columns)):
        for j, z in enumerate(zeros):
            for i in range(z, k):
                wires[i * columns + j if row_major else j * k + i] |= 1 << v
    swapping = []
    for lo, hi in _batcher_pairs(n):
        a, b = wires[lo], wires[hi]
        if a & ~b:  # some input has a 1 above a 0 here: the comparator does work
            swapping.append((lo, hi))
        wires[lo], wires[hi] = a & b, a | b
    needed, kept = set(wanted), []
    for lo, hi in reversed(swapping):
        keep_min, keep_max = lo in needed, hi in needed
        if keep_min or keep_max:
            kept.append((lo, hi, keep_min, keep_max))
            needed |= {lo, hi}
    return tuple(reversed(kept))


def column_sorted_median_network(k: int) -> Network:
    """The median of a k x k window whose columns are sorted (column-major: 146 against 168 min/max
    row-major at k = 5)."""
    return column_sorted_network(k, k, {k * k // 2})


def pair_network() -> Network:
    """Ranks 8..13 (wires 7..12) of the 4 sorted columns of 5 that two neighbouring 5x5 windows share
    (row-major: 108 against 126 min/max column-major)."""
    return column_sorted_network(5, 4, range(7, 13), row_major=True)


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


def _median3_lines(column_sort) -> list[str]:
    """median3: each window alone through the pruned 3x3 network."""
    network = column_sorted_median_network(3)
    n_ops = sum(int(keep_min) + int(keep_max) for _, _, keep_min, keep_max in network)
    lines = [
        "@_jit",
        "def median3(padded, out):",
        '    """out[:H, :W] = 3x3 medians of `padded` (H+2, W+2), the image with its border',
        f"    replicated by 1 (out may be wider: a padded plane): {len(column_sort)} comparators per",
        f'    column, {n_ops} min/max per pixel, min/max only, so exact."""',
        "    h, w = padded.shape[0] - 2, padded.shape[1] - 2",
        "    columns = np.empty((3, w + 2), np.float32)  # one row's sorted columns",
        "    for y in range(h):",
        *[f"        r{i} = padded[y + {i}]" for i in range(3)],
        *[f"        c{i} = columns[{i}]" for i in range(3)],
        "        for x in range(w + 2):  # each column's 3 values, sorted",
        *[f"            a{i} = r{i}[x]" for i in range(3)],
        *_comparators(column_sort, " " * 12),
        *[f"            c{i}[x] = a{i}" for i in range(3)],
        "        orow = out[y]",
        "        for x in range(w):  # each window: its sorted columns, the pruned network",
        *[f"            a{j * 3 + i} = c{i}[x + {j}]" for j in range(3) for i in range(3)],
        *_comparators(network, " " * 12),
        "            orow[x] = a4",
    ]
    return lines


def _median5_lines(column_sort) -> list[str]:
    """median5: pixels two by two, the shared columns' ranks 8..13 once, then each pixel's own column."""
    network = pair_network()
    n_ops = sum(int(keep_min) + int(keep_max) for _, _, keep_min, keep_max in network)
    i16 = " " * 16

    def sort_column(src: str, seg: int, at: str, indent: str) -> list[str]:
        """Column `src` of the chunk's rows c0..c4, sorted, into the scratch segments seg..seg+4 at `at`."""
        return [
            *[f"{indent}a{i} = c{i}[{src}]" for i in range(5)],
            *_comparators(column_sort, indent),
            *[f"{indent}s[{seg + i} * _SEG + {at}] = a{i}" for i in range(5)],
        ]

    def windows(indent: str, outs: list[tuple[int, str, str]]) -> list[str]:
        """The shared network on columns 2q+1 .. 2q+4 (odd p, even p+1, odd p+1, even p+2; row i of
        column j on wire 4i + j), then for each (segment, index, target) the merge with that column."""
        shared = [(_ODD, "p"), (_EVEN, "p + 1"), (_ODD, "p + 1"), (_EVEN, "p + 2")]
        lines = [
            f"{indent}a{4 * i + j} = s[{seg + i} * _SEG + {at}]" for i in range(5) for j, (seg, at) in enumerate(shared)
        ]
        lines += _comparators(network, indent)
        for seg, at, target in outs:
            lines += [f"{indent}b{i} = s[{seg + i} * _SEG + {at}]" for i in range(5)]
            lines.append(f"{indent}m = a12")
            for r in range(5):  # min over r of max(shared rank 8 + r, own rank 5 - r)
                a, b = f"a{7 + r}", f"b{4 - r}"
                lines.append(f"{indent}v = {b} if {a} < {b} else {a}")
                lines.append(f"{indent}m = m if m < v else v")
            lines.append(f"{indent}{target} = m")
        return lines

    return [
        "@_jit",
        "def median5(padded, out):",
        '    """out[:H, :W] = 5x5 medians of `padded` (H+4, W+4), the image with its border',
        f"    replicated by 2 (out may be wider: a padded plane): {len(column_sort)} comparators per",
        f"    column, {n_ops} min/max per pair of pixels and 10 per pixel, min/max only, so exact.",
        "    A row in chunks of _CHUNK pairs: s holds the chunk's sorted even columns (2q) at",
        '    s[(_EVEN + i) * _SEG + q - q0], its odd ones (2q + 1) at s[(_ODD + i) * _SEG + q - q0]."""',
        "    h, w = padded.shape[0] - 4, padded.shape[1] - 4",
        "    pairs = w // 2",
        "    s = np.empty(10 * _SEG, np.float32)",
        "    for y in range(h):",
        "        orow = out[y]",
        "        for q0 in range(0, pairs, _CHUNK):",
        "            n = min(_CHUNK, pairs - q0)",
        *[f"            c{i} = padded[y + {i}, 2 * q0 :]" for i in range(5)],
        "            for p in range(n + 2):  # columns 2q and 2q+1 (q = q0 + p), sorted",
        *sort_column("2 * p", _EVEN, "p", i16),
        *sort_column("2 * p + 1", _ODD, "p", i16),
        "            o = orow[2 * q0 :]",
        "            for p in range(n):  # pixels 2q and 2q+1",
        *windows(i16, [(_EVEN, "p", "o[2 * p]"), (_ODD, "p + 2", "o[2 * p + 1]")]),
        "        if w % 2:  # the last pixel alone: columns w-1 .. w+3",
        *[f"            c{i} = padded[y + {i}, 2 * pairs :]" for i in range(5)],
        "            for p in range(2):",
        *sort_column("2 * p", _EVEN, "p", i16),
        *sort_column("2 * p + 1", _ODD, "p", i16),
        *sort_column("4", _EVEN, "2", " " * 12),
        "            p = 0",
        *windows(" " * 12, [(_EVEN, "p", "orow[w - 1]")]),
    ]


def render() -> str:
    """This module's source: everything above the marker as it is, then one kernel per window size."""
    from flowprep.flow.torch_tvl1 import _batcher_pairs

    lines = [Path(__file__).read_text().split(_MARKER)[0] + _MARKER]
    for k, kernel in ((3, _median3_lines), (5, _median5_lines)):
        lines += ["", "", *kernel([(lo, hi, True, True) for lo, hi in _batcher_pairs(k)])]
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
    column, 108 min/max per pair of pixels and 10 per pixel, min/max only, so exact.
    A row in chunks of _CHUNK pairs: s holds the chunk's sorted even columns (2q) at
    s[(_EVEN + i) * _SEG + q - q0], its odd ones (2q + 1) at s[(_ODD + i) * _SEG + q - q0]."""
    h, w = padded.shape[0] - 4, padded.shape[1] - 4
    pairs = w // 2
    s = np.empty(10 * _SEG, np.float32)
    for y in range(h):
        orow = out[y]
        for q0 in range(0, pairs, _CHUNK):
            n = min(_CHUNK, pairs - q0)
            c0 = padded[y + 0, 2 * q0 :]
            c1 = padded[y + 1, 2 * q0 :]
            c2 = padded[y + 2, 2 * q0 :]
            c3 = padded[y + 3, 2 * q0 :]
            c4 = padded[y + 4, 2 * q0 :]
            for p in range(n + 2):  # columns 2q and 2q+1 (q = q0 + p), sorted
                a0 = c0[2 * p]
                a1 = c1[2 * p]
                a2 = c2[2 * p]
                a3 = c3[2 * p]
                a4 = c4[2 * p]
                a0, a1 = a0 if a0 < a1 else a1, a1 if a0 < a1 else a0
                a2, a3 = a2 if a2 < a3 else a3, a3 if a2 < a3 else a2
                a0, a2 = a0 if a0 < a2 else a2, a2 if a0 < a2 else a0
                a1, a3 = a1 if a1 < a3 else a3, a3 if a1 < a3 else a1
                a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
                a0, a4 = a0 if a0 < a4 else a4, a4 if a0 < a4 else a0
                a2, a4 = a2 if a2 < a4 else a4, a4 if a2 < a4 else a2
                a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
                a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
                s[0 * _SEG + p] = a0
                s[1 * _SEG + p] = a1
                s[2 * _SEG + p] = a2
                s[3 * _SEG + p] = a3
                s[4 * _SEG + p] = a4
                a0 = c0[2 * p + 1]
                a1 = c1[2 * p + 1]
                a2 = c2[2 * p + 1]
                a3 = c3[2 * p + 1]
                a4 = c4[2 * p + 1]
                a0, a1 = a0 if a0 < a1 else a1, a1 if a0 < a1 else a0
                a2, a3 = a2 if a2 < a3 else a3, a3 if a2 < a3 else a2
                a0, a2 = a0 if a0 < a2 else a2, a2 if a0 < a2 else a0
                a1, a3 = a1 if a1 < a3 else a3, a3 if a1 < a3 else a1
                a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
                a0, a4 = a0 if a0 < a4 else a4, a4 if a0 < a4 else a0
                a2, a4 = a2 if a2 < a4 else a4, a4 if a2 < a4 else a2
                a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
                a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
                s[5 * _SEG + p] = a0
                s[6 * _SEG + p] = a1
                s[7 * _SEG + p] = a2
                s[8 * _SEG + p] = a3
                s[9 * _SEG + p] = a4
            o = orow[2 * q0 :]
            for p in range(n):  # pixels 2q and 2q+1
                a0 = s[5 * _SEG + p]
                a1 = s[0 * _SEG + p + 1]
                a2 = s[5 * _SEG + p + 1]
                a3 = s[0 * _SEG + p + 2]
                a4 = s[6 * _SEG + p]
                a5 = s[1 * _SEG + p + 1]
                a6 = s[6 * _SEG + p + 1]
                a7 = s[1 * _SEG + p + 2]
                a8 = s[7 * _SEG + p]
                a9 = s[2 * _SEG + p + 1]
                a10 = s[7 * _SEG + p + 1]
                a11 = s[2 * _SEG + p + 2]
                a12 = s[8 * _SEG + p]
                a13 = s[3 * _SEG + p + 1]
                a14 = s[8 * _SEG + p + 1]
                a15 = s[3 * _SEG + p + 2]
                a16 = s[9 * _SEG + p]
                a17 = s[4 * _SEG + p + 1]
                a18 = s[9 * _SEG + p + 1]
                a19 = s[4 * _SEG + p + 2]
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
                a2 = a2 if a0 < a2 else a0
                a1, a3 = a1 if a1 < a3 else a3, a3 if a1 < a3 else a1
                a4, a6 = a4 if a4 < a6 else a6, a6 if a4 < a6 else a4
                a5, a7 = a5 if a5 < a7 else a7, a7 if a5 < a7 else a5
                a8, a10 = a8 if a8 < a10 else a10, a10 if a8 < a10 else a8
                a9, a11 = a9 if a9 < a11 else a11, a11 if a9 < a11 else a9
                a12, a14 = a12 if a12 < a14 else a14, a14 if a12 < a14 else a12
                a13 = a13 if a13 < a15 else a15
                a16, a18 = a16 if a16 < a18 else a18, a18 if a16 < a18 else a16
                a17 = a17 if a17 < a19 else a19
                a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
                a5, a6 = a5 if a5 < a6 else a6, a6 if a5 < a6 else a5
                a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
                a13, a14 = a13 if a13 < a14 else a14, a14 if a13 < a14 else a13
                a17 = a17 if a17 < a18 else a18
                a2, a4 = a2 if a2 < a4 else a4, a4 if a2 < a4 else a2
                a3, a5 = a3 if a3 < a5 else a5, a5 if a3 < a5 else a3
                a10, a12 = a10 if a10 < a12 else a12, a12 if a10 < a12 else a10
                a11, a13 = a11 if a11 < a13 else a13, a13 if a11 < a13 else a11
                a2 = a2 if a1 < a2 else a1
                a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
                a5, a6 = a5 if a5 < a6 else a6, a6 if a5 < a6 else a5
                a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
                a11, a12 = a11 if a11 < a12 else a12, a12 if a11 < a12 else a11
                a13 = a13 if a13 < a14 else a14
                a4, a8 = a4 if a4 < a8 else a8, a8 if a4 < a8 else a4
                a5, a9 = a5 if a5 < a9 else a9, a9 if a5 < a9 else a5
                a6, a10 = a6 if a6 < a10 else a10, a10 if a6 < a10 else a6
                a7, a11 = a7 if a7 < a11 else a11, a11 if a7 < a11 else a7
                a4 = a4 if a2 < a4 else a2
                a3, a5 = a3 if a3 < a5 else a5, a5 if a3 < a5 else a3
                a6, a8 = a6 if a6 < a8 else a8, a8 if a6 < a8 else a6
                a7, a9 = a7 if a7 < a9 else a9, a9 if a7 < a9 else a7
                a10, a12 = a10 if a10 < a12 else a12, a12 if a10 < a12 else a10
                a11, a13 = a11 if a11 < a13 else a13, a13 if a11 < a13 else a11
                a4 = a4 if a3 < a4 else a3
                a6 = a6 if a5 < a6 else a5
                a7, a8 = a7 if a7 < a8 else a8, a8 if a7 < a8 else a7
                a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
                a11, a12 = a11 if a11 < a12 else a12, a12 if a11 < a12 else a11
                a8, a16 = a8 if a8 < a16 else a16, a16 if a8 < a16 else a8
                a9, a17 = a9 if a9 < a17 else a17, a17 if a9 < a17 else a9
                a8 = a8 if a4 < a8 else a4
                a12 = a12 if a12 < a16 else a16
                a13 = a13 if a13 < a17 else a17
                a8 = a8 if a6 < a8 else a6
                a10, a12 = a10 if a10 < a12 else a12, a12 if a10 < a12 else a10
                a11 = a11 if a11 < a13 else a13
                a7, a8 = a7 if a7 < a8 else a8, a8 if a7 < a8 else a7
                a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
                a11, a12 = a11 if a11 < a12 else a12, a12 if a11 < a12 else a11
                b0 = s[0 * _SEG + p]
                b1 = s[1 * _SEG + p]
                b2 = s[2 * _SEG + p]
                b3 = s[3 * _SEG + p]
                b4 = s[4 * _SEG + p]
                m = a12
                v = b4 if a7 < b4 else a7
                m = m if m < v else v
                v = b3 if a8 < b3 else a8
                m = m if m < v else v
                v = b2 if a9 < b2 else a9
                m = m if m < v else v
                v = b1 if a10 < b1 else a10
                m = m if m < v else v
                v = b0 if a11 < b0 else a11
                m = m if m < v else v
                o[2 * p] = m
                b0 = s[5 * _SEG + p + 2]
                b1 = s[6 * _SEG + p + 2]
                b2 = s[7 * _SEG + p + 2]
                b3 = s[8 * _SEG + p + 2]
                b4 = s[9 * _SEG + p + 2]
                m = a12
                v = b4 if a7 < b4 else a7
                m = m if m < v else v
                v = b3 if a8 < b3 else a8
                m = m if m < v else v
                v = b2 if a9 < b2 else a9
                m = m if m < v else v
                v = b1 if a10 < b1 else a10
                m = m if m < v else v
                v = b0 if a11 < b0 else a11
                m = m if m < v else v
                o[2 * p + 1] = m
        if w % 2:  # the last pixel alone: columns w-1 .. w+3
            c0 = padded[y + 0, 2 * pairs :]
            c1 = padded[y + 1, 2 * pairs :]
            c2 = padded[y + 2, 2 * pairs :]
            c3 = padded[y + 3, 2 * pairs :]
            c4 = padded[y + 4, 2 * pairs :]
            for p in range(2):
                a0 = c0[2 * p]
                a1 = c1[2 * p]
                a2 = c2[2 * p]
                a3 = c3[2 * p]
                a4 = c4[2 * p]
                a0, a1 = a0 if a0 < a1 else a1, a1 if a0 < a1 else a0
                a2, a3 = a2 if a2 < a3 else a3, a3 if a2 < a3 else a2
                a0, a2 = a0 if a0 < a2 else a2, a2 if a0 < a2 else a0
                a1, a3 = a1 if a1 < a3 else a3, a3 if a1 < a3 else a1
                a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
                a0, a4 = a0 if a0 < a4 else a4, a4 if a0 < a4 else a0
                a2, a4 = a2 if a2 < a4 else a4, a4 if a2 < a4 else a2
                a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
                a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
                s[0 * _SEG + p] = a0
                s[1 * _SEG + p] = a1
                s[2 * _SEG + p] = a2
                s[3 * _SEG + p] = a3
                s[4 * _SEG + p] = a4
                a0 = c0[2 * p + 1]
                a1 = c1[2 * p + 1]
                a2 = c2[2 * p + 1]
                a3 = c3[2 * p + 1]
                a4 = c4[2 * p + 1]
                a0, a1 = a0 if a0 < a1 else a1, a1 if a0 < a1 else a0
                a2, a3 = a2 if a2 < a3 else a3, a3 if a2 < a3 else a2
                a0, a2 = a0 if a0 < a2 else a2, a2 if a0 < a2 else a0
                a1, a3 = a1 if a1 < a3 else a3, a3 if a1 < a3 else a1
                a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
                a0, a4 = a0 if a0 < a4 else a4, a4 if a0 < a4 else a0
                a2, a4 = a2 if a2 < a4 else a4, a4 if a2 < a4 else a2
                a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
                a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
                s[5 * _SEG + p] = a0
                s[6 * _SEG + p] = a1
                s[7 * _SEG + p] = a2
                s[8 * _SEG + p] = a3
                s[9 * _SEG + p] = a4
            a0 = c0[4]
            a1 = c1[4]
            a2 = c2[4]
            a3 = c3[4]
            a4 = c4[4]
            a0, a1 = a0 if a0 < a1 else a1, a1 if a0 < a1 else a0
            a2, a3 = a2 if a2 < a3 else a3, a3 if a2 < a3 else a2
            a0, a2 = a0 if a0 < a2 else a2, a2 if a0 < a2 else a0
            a1, a3 = a1 if a1 < a3 else a3, a3 if a1 < a3 else a1
            a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
            a0, a4 = a0 if a0 < a4 else a4, a4 if a0 < a4 else a0
            a2, a4 = a2 if a2 < a4 else a4, a4 if a2 < a4 else a2
            a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
            a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
            s[0 * _SEG + 2] = a0
            s[1 * _SEG + 2] = a1
            s[2 * _SEG + 2] = a2
            s[3 * _SEG + 2] = a3
            s[4 * _SEG + 2] = a4
            p = 0
            a0 = s[5 * _SEG + p]
            a1 = s[0 * _SEG + p + 1]
            a2 = s[5 * _SEG + p + 1]
            a3 = s[0 * _SEG + p + 2]
            a4 = s[6 * _SEG + p]
            a5 = s[1 * _SEG + p + 1]
            a6 = s[6 * _SEG + p + 1]
            a7 = s[1 * _SEG + p + 2]
            a8 = s[7 * _SEG + p]
            a9 = s[2 * _SEG + p + 1]
            a10 = s[7 * _SEG + p + 1]
            a11 = s[2 * _SEG + p + 2]
            a12 = s[8 * _SEG + p]
            a13 = s[3 * _SEG + p + 1]
            a14 = s[8 * _SEG + p + 1]
            a15 = s[3 * _SEG + p + 2]
            a16 = s[9 * _SEG + p]
            a17 = s[4 * _SEG + p + 1]
            a18 = s[9 * _SEG + p + 1]
            a19 = s[4 * _SEG + p + 2]
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
            a2 = a2 if a0 < a2 else a0
            a1, a3 = a1 if a1 < a3 else a3, a3 if a1 < a3 else a1
            a4, a6 = a4 if a4 < a6 else a6, a6 if a4 < a6 else a4
            a5, a7 = a5 if a5 < a7 else a7, a7 if a5 < a7 else a5
            a8, a10 = a8 if a8 < a10 else a10, a10 if a8 < a10 else a8
            a9, a11 = a9 if a9 < a11 else a11, a11 if a9 < a11 else a9
            a12, a14 = a12 if a12 < a14 else a14, a14 if a12 < a14 else a12
            a13 = a13 if a13 < a15 else a15
            a16, a18 = a16 if a16 < a18 else a18, a18 if a16 < a18 else a16
            a17 = a17 if a17 < a19 else a19
            a1, a2 = a1 if a1 < a2 else a2, a2 if a1 < a2 else a1
            a5, a6 = a5 if a5 < a6 else a6, a6 if a5 < a6 else a5
            a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
            a13, a14 = a13 if a13 < a14 else a14, a14 if a13 < a14 else a13
            a17 = a17 if a17 < a18 else a18
            a2, a4 = a2 if a2 < a4 else a4, a4 if a2 < a4 else a2
            a3, a5 = a3 if a3 < a5 else a5, a5 if a3 < a5 else a3
            a10, a12 = a10 if a10 < a12 else a12, a12 if a10 < a12 else a10
            a11, a13 = a11 if a11 < a13 else a13, a13 if a11 < a13 else a11
            a2 = a2 if a1 < a2 else a1
            a3, a4 = a3 if a3 < a4 else a4, a4 if a3 < a4 else a3
            a5, a6 = a5 if a5 < a6 else a6, a6 if a5 < a6 else a5
            a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
            a11, a12 = a11 if a11 < a12 else a12, a12 if a11 < a12 else a11
            a13 = a13 if a13 < a14 else a14
            a4, a8 = a4 if a4 < a8 else a8, a8 if a4 < a8 else a4
            a5, a9 = a5 if a5 < a9 else a9, a9 if a5 < a9 else a5
            a6, a10 = a6 if a6 < a10 else a10, a10 if a6 < a10 else a6
            a7, a11 = a7 if a7 < a11 else a11, a11 if a7 < a11 else a7
            a4 = a4 if a2 < a4 else a2
            a3, a5 = a3 if a3 < a5 else a5, a5 if a3 < a5 else a3
            a6, a8 = a6 if a6 < a8 else a8, a8 if a6 < a8 else a6
            a7, a9 = a7 if a7 < a9 else a9, a9 if a7 < a9 else a7
            a10, a12 = a10 if a10 < a12 else a12, a12 if a10 < a12 else a10
            a11, a13 = a11 if a11 < a13 else a13, a13 if a11 < a13 else a11
            a4 = a4 if a3 < a4 else a3
            a6 = a6 if a5 < a6 else a5
            a7, a8 = a7 if a7 < a8 else a8, a8 if a7 < a8 else a7
            a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
            a11, a12 = a11 if a11 < a12 else a12, a12 if a11 < a12 else a11
            a8, a16 = a8 if a8 < a16 else a16, a16 if a8 < a16 else a8
            a9, a17 = a9 if a9 < a17 else a17, a17 if a9 < a17 else a9
            a8 = a8 if a4 < a8 else a4
            a12 = a12 if a12 < a16 else a16
            a13 = a13 if a13 < a17 else a17
            a8 = a8 if a6 < a8 else a6
            a10, a12 = a10 if a10 < a12 else a12, a12 if a10 < a12 else a10
            a11 = a11 if a11 < a13 else a13
            a7, a8 = a7 if a7 < a8 else a8, a8 if a7 < a8 else a7
            a9, a10 = a9 if a9 < a10 else a10, a10 if a9 < a10 else a9
            a11, a12 = a11 if a11 < a12 else a12, a12 if a11 < a12 else a11
            b0 = s[0 * _SEG + p]
            b1 = s[1 * _SEG + p]
            b2 = s[2 * _SEG + p]
            b3 = s[3 * _SEG + p]
            b4 = s[4 * _SEG + p]
            m = a12
            v = b4 if a7 < b4 else a7
            m = m if m < v else v
            v = b3 if a8 < b3 else a8
            m = m if m < v else v
            v = b2 if a9 < b2 else a9
            m = m if m < v else v
            v = b1 if a10 < b1 else a10
            m = m if m < v else v
            v = b0 if a11 < b0 else a11
            m = m if m < v else v
            orow[w - 1] = m
