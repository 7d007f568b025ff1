"""The numba kernels of the fused CPU TV-L1 (`numba_tvl1`): imported on first use, compiled once per
machine (numba's on-disk cache), one thread each.

Every float operation is OpenCV's (`modules/optflow/src/tvl1flow.cpp`), in OpenCV's order and precision:
float32 scalars throughout (a float64 literal would promote a whole expression, hence the `_F*`
constants), no FMA contraction and no reassociation (numba's default: fastmath off). Arrays are
C-contiguous float32 (H, W) planes of one pair at one pyramid level.
"""
from __future__ import annotations

import numba
import numpy as np

from flowprep.flow._median_networks import median3, median5  # noqa: F401  (re-exported kernels)

_jit = numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
_inline = numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)  # inlined by LLVM

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_HALF = np.float32(0.5)
_FLT_EPSILON = np.float32(np.finfo(np.float32).eps)
_FLT_MAX = np.float32(np.finfo(np.float32).max)
# cv::interpolateCubic's Keys kernel, A = -0.75
_A = np.float32(-0.75)
_A2 = np.float32(-0.75 + 2.0)
_A3 = np.float32(-0.75 + 3.0)
_5A = np.float32(5.0 * -0.75)
_8A = np.float32(8.0 * -0.75)
_4A = np.float32(4.0 * -0.75)
_FAR = np.float32(8.0)  # positions clamp to [-8, size + 8] before the int cast: their taps are all outside


# ---- one inner iteration: estimateV, divergence, estimateU, forwardGradient, estimateDualVariables --

@_inline
def _threshold_update(u1k, u2k, ix, iy, g, rho_c, div1, div2, l_t, theta):
    """estimateV's thresholding step, then estimateU's u = v + theta * div(p), for one pixel."""
    rho = rho_c + (ix * u1k + iy * u2k)
    fi = -rho / g  # used only where g > FLT_EPSILON; computing it everywhere keeps the loop branch-free
    below = rho < -l_t * g
    above = rho > l_t * g
    flat = g > _FLT_EPSILON
    d1 = l_t * ix if below else (-l_t * ix if above else (fi * ix if flat else _F0))
    d2 = l_t * iy if below else (-l_t * iy if above else (fi * iy if flat else _F0))
    return (u1k + d1) + theta * div1, (u2k + d2) + theta * div2


@_inline
def _u_row(y, u1, u2, p11, p12, p21, p22, I1wx, I1wy, grad, rho_c, l_t, theta, err_row):
    """Row y of the flow, in place; err_row[x] = the pixel's squared update. Reads p of rows y and
    y-1 before their dual update. The divergence is a backward difference with p = 0 before the first
    row and column, and OpenCV groups its terms differently there: `(a - b) + (c - d)` inside,
    `a - b + c` on the first row, `a + c - d` on the first column."""
    w = u1.shape[1]
    u1r, u2r, p11r, p12r, p21r, p22r = u1[y], u2[y], p11[y], p12[y], p21[y], p22[y]
    ixr, iyr, gr, rr = I1wx[y], I1wy[y], grad[y], rho_c[y]
    if y > 0:
        p12u, p22u = p12[y - 1], p22[y - 1]
        div1 = p11r[0] + p12r[0] - p12u[0]
        div2 = p21r[0] + p22r[0] - p22u[0]
    else:
        p12u, p22u = p12r, p22r  # unused on the first row
        div1 = p11r[0] + p12r[0]
        div2 = p21r[0] + p22r[0]
    u1k, u2k = u1r[0], u2r[0]
    n1, n2 = _threshold_update(u1k, u2k, ixr[0], iyr[0], gr[0], rr[0], div1, div2, l_t, theta)
    u1r[0], u2r[0] = n1, n2
    err_row[0] = (n1 - u1k) * (n1 - u1k) + (n2 - u2k) * (n2 - u2k)
    if y > 0:
        for x in range(1, w):  # the hot loop: straight-line, vectorized
            u1k, u2k = u1r[x], u2r[x]
            div1 = (p11r[x] - p11r[x - 1]) + (p12r[x] - p12u[x])
            div2 = (p21r[x] - p21r[x - 1]) + (p22r[x] - p22u[x])
            n1, n2 = _threshold_update(u1k, u2k, ixr[x], iyr[x], gr[x], rr[x], div1, div2, l_t, theta)
            u1r[x], u2r[x] = n1, n2
            err_row[x] = (n1 - u1k) * (n1 - u1k) + (n2 - u2k) * (n2 - u2k)
    else:
        for x in range(1, w):
            u1k, u2k = u1r[x], u2r[x]
            div1 = p11r[x] - p11r[x - 1] + p12r[x]
            div2 = p21r[x] - p21r[x - 1] + p22r[x]
            n1, n2 = _threshold_update(u1k, u2k, ixr[x], iyr[x], gr[x], rr[x], div1, div2, l_t, theta)
            u1r[x], u2r[x] = n1, n2
            err_row[x] = (n1 - u1k) * (n1 - u1k) + (n2 - u2k) * (n2 - u2k)


@_inline
def _dual_update(p1, p2, ux, uy, taut):
    """estimateDualVariables for one pixel and one flow component."""
    # static_cast<float>(hypot(a, b)): squares of floats are exact in double, so this is hypot
    g = np.float32(np.sqrt(np.float64(ux) * np.float64(ux) + np.float64(uy) * np.float64(uy)))
    ng = _F1 + taut * g
    return (p1 + taut * ux) / ng, (p2 + taut * uy) / ng


@_inline
def _p_row(y, u1, u2, p11, p12, p21, p22, taut):
    """Row y of the dual variables, in place, from the new flow's forward gradient (rows y, y+1),
    which is 0 across the last column and the last row."""
    h, w = u1.shape
    u1r, u2r, p11r, p12r, p21r, p22r = u1[y], u2[y], p11[y], p12[y], p21[y], p22[y]
    if y < h - 1:
        u1d, u2d = u1[y + 1], u2[y + 1]
        for x in range(w - 1):  # the hot loop
            p11r[x], p12r[x] = _dual_update(p11r[x], p12r[x], u1r[x + 1] - u1r[x], u1d[x] - u1r[x], taut)
            p21r[x], p22r[x] = _dual_update(p21r[x], p22r[x], u2r[x + 1] - u2r[x], u2d[x] - u2r[x], taut)
        x = w - 1
        p11r[x], p12r[x] = _dual_update(p11r[x], p12r[x], _F0, u1d[x] - u1r[x], taut)
        p21r[x], p22r[x] = _dual_update(p21r[x], p22r[x], _F0, u2d[x] - u2r[x], taut)
    else:
        for x in range(w - 1):
            p11r[x], p12r[x] = _dual_update(p11r[x], p12r[x], u1r[x + 1] - u1r[x], _F0, taut)
            p21r[x], p22r[x] = _dual_update(p21r[x], p22r[x], u2r[x + 1] - u2r[x], _F0, taut)
        x = w - 1
        p11r[x], p12r[x] = _dual_update(p11r[x], p12r[x], _F0, _F0, taut)
        p21r[x], p22r[x] = _dual_update(p21r[x], p22r[x], _F0, _F0, taut)


@_jit
def sweep(u1, u2, p11, p12, p21, p22, I1wx, I1wy, grad, rho_c, l_t, theta, taut, err_row):
    """One inner iteration in one pass over memory (flow of row y, then duals of row y-1); returns
    estimateU's error, summed sequentially in float32 in row-major order as OpenCV does."""
    h, w = u1.shape
    error = _F0
    for y in range(h):
        _u_row(y, u1, u2, p11, p12, p21, p22, I1wx, I1wy, grad, rho_c, l_t, theta, err_row)
        for x in range(w):
            error += err_row[x]
        if y > 0:
            _p_row(y - 1, u1, u2, p11, p12, p21, p22, taut)
    _p_row(h - 1, u1, u2, p11, p12, p21, p22, taut)
    return error


@_jit
def inner_loop(u1, u2, p11, p12, p21, p22, I1wx, I1wy, grad, rho_c, l_t, theta, taut,
               scaled_epsilon, max_iterations, err_row):
    """procOneScale's inner loop: sweeps while error > scaled_epsilon, at most max_iterations.
    Returns (sweeps run, the last error)."""
    error = _FLT_MAX
    n = 0
    while n < max_iterations and error > scaled_epsilon:
        error = sweep(u1, u2, p11, p12, p21, p22, I1wx, I1wy, grad, rho_c, l_t, theta, taut, err_row)
        n += 1
    return n, error


# ---- once per warp: buildFlowMap, remap(INTER_CUBIC) of I1, I1x, I1y, calcGradRho ----------------

@_inline
def _cubic_weights(t):
    """cv::interpolateCubic at sub-pixel offset t, in float as OpenCV computes it."""
    w0 = ((_A * (t + _F1) - _5A) * (t + _F1) + _8A) * (t + _F1) - _4A
    w1 = ((_A2 * t - _A3) * t * t) + _F1
    w2 = ((_A2 * (_F1 - t) - _A3) * (_F1 - t) * (_F1 - t)) + _F1
    return w0, w1, w2, _F1 - w0 - w1 - w2


@_jit
def warp(I0, I1, I1x, I1y, u1, u2, I1wx, I1wy, grad, rho_c):
    """I1, I1x, I1y sampled at (x + u1, y + u2) with the cubic kernel (taps outside the image read 0),
    then grad = I1wx^2 + I1wy^2 and rho_c = I1w - I1wx * u1 - I1wy * u2 - I0 (calcGradRho)."""
    h, w = I0.shape
    for y in range(h):
        for x in range(w):
            mx = np.float32(x) + u1[y, x]
            my = np.float32(y) + u2[y, x]
            fx = np.floor(mx)
            fy = np.floor(my)
            wx0, wx1, wx2, wx3 = _cubic_weights(mx - fx)
            wy0, wy1, wy2, wy3 = _cubic_weights(my - fy)
            x0 = int(min(max(fx, -_FAR), np.float32(w) + _FAR)) - 1
            y0 = int(min(max(fy, -_FAR), np.float32(h) + _FAR)) - 1
            if 0 <= x0 and x0 + 3 < w and 0 <= y0 and y0 + 3 < h:  # all 16 taps inside: no tests
                s0, s1, s2 = _F0, _F0, _F0
                for i in range(4):
                    wy = wy0 if i == 0 else (wy1 if i == 1 else (wy2 if i == 2 else wy3))
                    yi = y0 + i
                    r0 = I1[yi, x0] * wx0 + I1[yi, x0 + 1] * wx1 + I1[yi, x0 + 2] * wx2 + I1[yi, x0 + 3] * wx3
                    r1 = I1x[yi, x0] * wx0 + I1x[yi, x0 + 1] * wx1 + I1x[yi, x0 + 2] * wx2 + I1x[yi, x0 + 3] * wx3
                    r2 = I1y[yi, x0] * wx0 + I1y[yi, x0 + 1] * wx1 + I1y[yi, x0 + 2] * wx2 + I1y[yi, x0 + 3] * wx3
                    s0 += r0 * wy
                    s1 += r1 * wy
                    s2 += r2 * wy
            else:  # near or past the border: taps outside the image read 0 (BORDER_CONSTANT)
                s0, s1, s2 = _F0, _F0, _F0
                for i in range(4):
                    yi = y0 + i
                    wy = wy0 if i == 0 else (wy1 if i == 1 else (wy2 if i == 2 else wy3))
                    r0, r1, r2 = _F0, _F0, _F0
                    if 0 <= yi < h:
                        for j in range(4):
                            xj = x0 + j
                            if 0 <= xj < w:
                                wxj = wx0 if j == 0 else (wx1 if j == 1 else (wx2 if j == 2 else wx3))
                                r0 += I1[yi, xj] * wxj
                                r1 += I1x[yi, xj] * wxj
                                r2 += I1y[yi, xj] * wxj
                    s0 += r0 * wy
                    s1 += r1 * wy
                    s2 += r2 * wy
            I1wx[y, x] = s1
            I1wy[y, x] = s2
            grad[y, x] = s1 * s1 + s2 * s2
            rho_c[y, x] = s0 - s1 * u1[y, x] - s2 * u2[y, x] - I0[y, x]


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
    """padded (H+2r, W+2r) = src (H,W) with its border pixels repeated r times (BORDER_REPLICATE)."""
    h, w = src.shape
    for y in range(h + 2 * r):
        sy = min(max(y - r, 0), h - 1)
        for x in range(w + 2 * r):
            padded[y, x] = src[sy, min(max(x - r, 0), w - 1)]


def warm_up() -> None:
    """Compile every kernel (or load it from numba's disk cache) on tiny arrays. Called when a backend
    is built, so the driver of a job compiles once and the workers on its machine find the cache,
    instead of each worker compiling the same code at the same time."""
    plane = np.zeros((4, 4), np.float32)
    planes = [plane.copy() for _ in range(10)]
    inner_loop(*planes, _F1, _F1, _F1, _F0, 1, np.zeros(4, np.float32))
    warp(*[plane.copy() for _ in range(10)])
    centered_gradient(plane, plane.copy(), plane.copy())
    for radius, median in ((1, median3), (2, median5)):
        padded = np.zeros((4 + 2 * radius, 4 + 2 * radius), np.float32)
        pad_replicate(plane, radius, padded)
        median(padded, plane.copy())
