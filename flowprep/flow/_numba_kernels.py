"""The numba kernels of the fused CPU TV-L1 (`numba_tvl1`): imported on first use, compiled once per
machine (numba's on-disk cache), one thread each.

The float operations are OpenCV's (`modules/optflow/src/tvl1flow.cpp`), in OpenCV's order and
precision: float32 scalars throughout (a float64 literal would promote a whole expression, hence the
`_F*` constants), no FMA contraction and no reassociation (numba's default: fastmath off), except the
deviations that `_dual_update` and `_plane_sum` document. Nothing depends on the SIMD width LLVM
picks for the CPU (AVX2, AVX-512, NEON): every loop is elementwise or sums in a fixed order.
"""

from __future__ import annotations

import numpy as np

from flowprep.flow._median_networks import median3, median5  # noqa: F401  (re-exported kernels)
from flowprep.flow._numba_warp import (  # noqa: F401  (re-exported)
    _F0,
    _F1,
    PAD,
    SCRATCH_FLOATS,
    _inline,
    _jit,
    pad_images,
    warp,
    warp_framed,
    warp_per_pixel,
)

_HALF = np.float32(0.5)
_FLT_EPSILON = np.float32(np.finfo(np.float32).eps)
_FLT_MAX = np.float32(np.finfo(np.float32).max)


# ---- one inner iteration: estimateV, divergence, estimateU, forwardGradient, estimateDualVariables --
# An iteration is two passes, each ONE vectorized loop over the whole level (the flow update, then the
# dual update): loops over single rows cost ~600 cycles each to enter (LLVM's runtime alias checks of
# 15 pointers, the scalar remainder), as much as the row's own work at 256 px. For those loops to read
# neighbours with plain shifted loads, the planes are padded:
#   - rows of Wp >= W floats (a whole number of SIMD vectors: no pad column when W is a multiple of
#     16, as at 256 px, where one would cost 6% of the work). I1wx .. rho_c are zero in the pads.
#   - the state (u, p) in 1-D buffers of (H+2)*Wp floats: the plane, a zero row above (the divergence's
#     p12 of the row above the first row is 0) and a row below (set to the flow's last row before the
#     dual update: a zero gradient below it).
# The pad columns compute values that no real pixel reads. The two real pixels per row whose neighbour
# lies across the row's end are redone after their pass with OpenCV's border formulas: x = 0 in the
# flow update (its left neighbour is the previous row's end), x = W-1 in the dual update (its right
# neighbour is a pad column or the next row's start; OpenCV's forward gradient there is 0).

# Rows are padded to whole 64-byte cache lines: one AVX-512 vector of float32, two AVX2 or four NEON
# ones. numba compiles for the CPU it runs on, and LLVM picks the width (512-bit on Zen 4, 256-bit on
# AVX2 CPUs and by default on Intel's AVX-512 ones); the flow is the same at every width (tested).
LANES = 16


@_inline
def state_views(buf, h, wp):
    """A state buffer's plane as 1-D views of H*Wp floats: (at, left, right, up, down) = the plane at
    pixel i, i-1, i+1, i-Wp, i+Wp (`left` of x = 0 and `right` of x = Wp-1 cross rows)."""
    n = h * wp
    return (buf[wp : wp + n], buf[wp - 1 : wp - 1 + n], buf[wp + 1 : wp + 1 + n], buf[0:n], buf[2 * wp : 2 * wp + n])


@_inline
def _threshold_update(u1k, u2k, ix, iy, g, rho_c, div1, div2, l_t, theta):
    """estimateV's thresholding step, then estimateU's u = v + theta * div(p), for one pixel."""
    rho = rho_c + (ix * u1k + iy * u2k)
    flat = not g > _FLT_EPSILON
    fi = -rho / (_F1 if flat else g)  # computed everywhere (branch-free), used where not flat; no 0/0
    below = rho < -l_t * g
    above = rho > l_t * g
    d1 = l_t * ix if below else (-l_t * ix if above else (_F0 if flat else fi * ix))
    d2 = l_t * iy if below else (-l_t * iy if above else (_F0 if flat else fi * iy))
    return (u1k + d1) + theta * div1, (u2k + d2) + theta * div2


@_inline
def _flow_step(u1k, u2k, ix, iy, g, rho_c, div1, div2, l_t, theta):
    """`_threshold_update` of one pixel: its new flow, and its squared step (estimateU's error term).
    Scalars in and out: an array passed to a helper inside the loop costs a refcount per pixel."""
    n1, n2 = _threshold_update(u1k, u2k, ix, iy, g, rho_c, div1, div2, l_t, theta)
    return n1, n2, (n1 - u1k) * (n1 - u1k) + (n2 - u2k) * (n2 - u2k)


@_inline
def _dual_update(p11, p12, p21, p22, u1x, u1y, u2x, u2y, taut):
    """estimateDualVariables for one pixel, both flow components. Deviations from OpenCV, each within
    a float32 rounding or two of its result: |grad u| is sqrtf(ux^2 + uy^2) where OpenCV rounds a double
    hypot; the four divisions by ng1 and ng2 are products with their reciprocals; and those come from
    ONE division, 1 / (ng1 ng2) times ng2 or ng1. All unload the SIMD divider, this pass's bottleneck
    (a double sqrt takes 4 lanes where a float one takes 8; the shared division made the iteration
    1.04x faster). ng >= 1, so ng1 ng2 overflows only where ng1 or ng2 nearly does."""
    ng1 = _F1 + taut * np.sqrt(u1x * u1x + u1y * u1y)
    ng2 = _F1 + taut * np.sqrt(u2x * u2x + u2y * u2y)
    inv_both = _F1 / (ng1 * ng2)
    inv1, inv2 = inv_both * ng2, inv_both * ng1
    return (p11 + taut * u1x) * inv1, (p12 + taut * u1y) * inv1, (p21 + taut * u2x) * inv2, (p22 + taut * u2y) * inv2


@_inline
def _plane_sum(err, w):
    """err[:, :w] summed: each column down the rows (elementwise adds, vectorized), then the column sums
    left to right. OpenCV sums estimateU's error sequentially in float32; the two differ by float32
    rounding (relative ~1e-6 at 256x256), so a pair stops one iteration apart from OpenCV only when its
    error lands that close to epsilon. Every add is a fixed pair of floats: the same sum whatever the
    SIMD width (a reassociated reduction would depend on it, and so would the flow, now and then)."""
    h = err.shape[0]
    columns = err[0].copy()
    for y in range(1, h):
        row = err[y]
        for x in range(w):
            columns[x] += row[x]
    total = _F0
    for x in range(w):
        total += columns[x]
    return total


@_jit
def sweep(w, u1b, u2b, p11b, p12b, p21b, p22b, I1wx, I1wy, grad, rho_c, l_t, theta, taut, err, edges):
    """One inner iteration, in place on the state buffers (see above); returns estimateU's summed
    squared update over the real (H, w) pixels. I1wx .. rho_c, err: (H, Wp); edges: (6, H) scratch,
    the flow at x = 0 before the flow update and the duals at x = w-1 before the dual update."""
    h, wp = I1wx.shape
    u1, _, u1r, _, u1d = state_views(u1b, h, wp)
    u2, _, u2r, _, u2d = state_views(u2b, h, wp)
    p11, p11l, _, _, _ = state_views(p11b, h, wp)
    p12, _, _, p12u, _ = state_views(p12b, h, wp)
    p21, p21l, _, _, _ = state_views(p21b, h, wp)
    p22, _, _, p22u, _ = state_views(p22b, h, wp)
    ix, iy, g, rc, e = I1wx.ravel(), I1wy.ravel(), grad.ravel(), rho_c.ravel(), err.ravel()
    for y in range(h):
        edges[0, y], edges[1, y] = u1[y * wp], u2[y * wp]

    for i in range(h * wp):  # the flow update: straight-line, vectorized
        div1 = (p11[i] - p11l[i]) + (p12[i] - p12u[i])
        div2 = (p21[i] - p21l[i]) + (p22[i] - p22u[i])
        u1[i], u2[i], e[i] = _flow_step(u1[i], u2[i], ix[i], iy[i], g[i], rc[i], div1, div2, l_t, theta)
    for y in range(h):  # x = 0 read the previous row's end through p11l: OpenCV's first column, `a + c - d`
        i = y * wp
        div1 = (p11[i] + p12[i]) - p12u[i]
        div2 = (p21[i] + p22[i]) - p22u[i]
        u1[i], u2[i], e[i] = _flow_step(edges[0, y], edges[1, y], ix[i], iy[i], g[i], rc[i], div1, div2, l_t, theta)
    error = _plane_sum(err, w)

    last = (h - 1) * wp
    for x in range(wp):  # a zero forward gradient below the last row
        u1d[last + x], u2d[last + x] = u1[last + x], u2[last + x]
    for y in range(h):
        i = y * wp + w - 1
        edges[2, y], edges[3, y], edges[4, y], edges[5, y] = p11[i], p12[i], p21[i], p22[i]
    for i in range(h * wp):  # the dual update, vectorized
        p11[i], p12[i], p21[i], p22[i] = _dual_update(
            p11[i], p12[i], p21[i], p22[i], u1r[i] - u1[i], u1d[i] - u1[i], u2r[i] - u2[i], u2d[i] - u2[i], taut
        )
    for y in range(h):  # x = w-1 read a pad column or the next row's start through u1r: OpenCV's 0
        i = y * wp + w - 1
        p11[i], p12[i], p21[i], p22[i] = _dual_update(
            edges[2, y], edges[3, y], edges[4, y], edges[5, y], _F0, u1d[i] - u1[i], _F0, u2d[i] - u2[i], taut
        )
    return error


@_jit
def inner_loop(
    w,
    u1b,
    u2b,
    p11b,
    p12b,
    p21b,
    p22b,
    I1wx,
    I1wy,
    grad,
    rho_c,
    l_t,
    theta,
    taut,
    scaled_epsilon,
    max_iterations,
    err,
    edges,
):
    """procOneScale's inner loop: sweeps while error > scaled_epsilon, at most max_iterations.
    Returns (sweeps run, the last error)."""
    error = _FLT_MAX
    n = 0
    while n < max_iterations and error > scaled_epsilon:
        error = sweep(w, u1b, u2b, p11b, p12b, p21b, p22b, I1wx, I1wy, grad, rho_c, l_t, theta, taut, err, edges)
        n += 1
    return n, error


@_jit
def centered_gradient(src, dx, dy):
    """centeredGradient: 0.5 * (next - prev), half one-sided differences on the border."""
    h, w = src.shape
    for y in range(h):
        yp = max(y - 1, 0)
        yn = min(y + 1, h - 1)
        for x in range(w):
            dx[y, x] = _HALF * (src[y, min(x + 1, w - 1)] - src[y, max(x - 1, 0)])
            dy[y, x] = _HALF * (src[yn, x] - src[yp, x])


# ---- cv::medianBlur(u, u, k) of a float image: the exact window median, border replicated ---------
# median5(padded, out) and median3(padded, out) are generated code, imported from _median_networks.


@_jit
def pad_replicate(src, r, padded):
    """padded (H+2r, W+2r) = src[:H, :W] with its border pixels repeated r times (BORDER_REPLICATE);
    src may be wider (a padded plane)."""
    h, w = padded.shape[0] - 2 * r, padded.shape[1] - 2 * r
    for y in range(h + 2 * r):
        row, out = src[min(max(y - r, 0), h - 1)], padded[y]
        inner = out[r : r + w]
        for x in range(w):  # vectorized: a row copy
            inner[x] = row[x]
        for x in range(r):
            out[x] = row[0]
            out[r + w + x] = row[w - 1]


def warm_up() -> None:
    """Compile every kernel (or load it from numba's disk cache) on tiny arrays. Called when a solver
    with Python-driven levels is built (a compiled level warms `solve_level`, which holds the kernels),
    so the driver of a job compiles once and the workers on its machine find the cache, instead of
    each worker compiling the same code at the same time."""
    plane = np.zeros((4, 4), np.float32)
    buffers = [np.zeros(6 * LANES, np.float32) for _ in range(6)]
    padded_planes = [np.zeros((4, LANES), np.float32) for _ in range(5)]
    inner_loop(3, *buffers, *padded_planes[:4], _F1, _F1, _F1, _F0, 1, padded_planes[4], np.zeros((6, 4), np.float32))
    warp(*[plane.copy() for _ in range(10)], np.zeros(SCRATCH_FLOATS, np.float32))
    centered_gradient(plane, plane.copy(), plane.copy())
    for radius, median in ((1, median3), (2, median5)):
        padded = np.zeros((4 + 2 * radius, 4 + 2 * radius), np.float32)
        pad_replicate(plane, radius, padded)
        median(padded, plane.copy())
