"""The warp of the fused CPU TV-L1 (`numba_tvl1`): buildFlowMap, the cubic remap of I1, I1x, I1y and
calcGradRho of `tvl1flow.cpp`, once per warp, in OpenCV's float operations and order. The run-based
SIMD path equals the per-pixel path bit for bit (tests/test_numba_tvl1.py); both are within float32
rounding of cv2.remap, whose SIMD build fuses multiply-adds.

The solver samples images framed by PAD zeros (`pad_images`, once per pyramid level: I1 and its
gradients do not change between its warps): every tap of every pixel then lies inside the framed
image, because positions clamp to 8 px outside it, so neither path tests a border. A tap outside the
image reads the frame's 0, as BORDER_CONSTANT has it: the sum gains a +-0 term where the border
formula skips the tap, which changes no value (at most the sign of an exact zero).
"""

from __future__ import annotations

import numpy as np

from flowprep.flow._numba_cache import kernel_jit

_jit = kernel_jit  # cached on the source of all kernel files (`_numba_cache`)
_inline = kernel_jit  # inlined by LLVM

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
# cv::interpolateCubic's Keys kernel, A = -0.75
_A = np.float32(-0.75)
_A2 = np.float32(-0.75 + 2.0)
_A3 = np.float32(-0.75 + 3.0)
_5A = np.float32(5.0 * -0.75)
_8A = np.float32(8.0 * -0.75)
_4A = np.float32(4.0 * -0.75)
_FAR = np.float32(8.0)  # positions clamp to [-8, size + 8] before the int cast: their taps are all outside
# The zero frame around the sampled images: a pixel's taps reach 9 px before the image (x0 = -8 - 1) and
# 11 px past its last column (x0 + 3 with x0 = w + 8 - 1, + 1 for the run window's fifth column).
PAD = 12


@_inline
def _cubic_weights(t):
    """cv::interpolateCubic at sub-pixel offset t, in float as OpenCV computes it."""
    w0 = ((_A * (t + _F1) - _5A) * (t + _F1) + _8A) * (t + _F1) - _4A
    w1 = ((_A2 * t - _A3) * t * t) + _F1
    w2 = ((_A2 * (_F1 - t) - _A3) * (_F1 - t) * (_F1 - t)) + _F1
    return w0, w1, w2, _F1 - w0 - w1 - w2


@_inline
def _warp_span(I0, I1, I1x, I1y, u1, u2, I1wx, I1wy, grad, rho_c, y, start, stop):
    """`warp` of pixels start..stop-1 of row y, any flow, any position, one pixel at a time (scalar).
    A call per span, not per pixel: numba passes each array as 7 arguments."""
    h, w = I0.shape
    for x in range(start, stop):
        mx = np.float32(x) + u1[y, x]
        my = np.float32(y) + u2[y, x]
        fx = np.floor(mx)
        fy = np.floor(my)
        wx0, wx1, wx2, wx3 = _cubic_weights(mx - fx)
        wy0, wy1, wy2, wy3 = _cubic_weights(my - fy)
        x0 = int(min(max(fx, -_FAR), np.float32(w) + _FAR)) - 1
        y0 = int(min(max(fy, -_FAR), np.float32(h) + _FAR)) - 1
        s0, s1, s2 = _F0, _F0, _F0
        if 0 <= x0 and x0 + 3 < w and 0 <= y0 and y0 + 3 < h:  # all 16 taps inside: no tests
            for i in range(4):
                wy = wy0 if i == 0 else (wy1 if i == 1 else (wy2 if i == 2 else wy3))
                yi = y0 + i
                s0 += (I1[yi, x0] * wx0 + I1[yi, x0 + 1] * wx1 + I1[yi, x0 + 2] * wx2 + I1[yi, x0 + 3] * wx3) * wy
                s1 += (I1x[yi, x0] * wx0 + I1x[yi, x0 + 1] * wx1 + I1x[yi, x0 + 2] * wx2 + I1x[yi, x0 + 3] * wx3) * wy
                s2 += (I1y[yi, x0] * wx0 + I1y[yi, x0 + 1] * wx1 + I1y[yi, x0 + 2] * wx2 + I1y[yi, x0 + 3] * wx3) * wy
        else:  # near or past the border: taps outside the image read 0 (BORDER_CONSTANT)
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


@_inline
def _warp_span_framed(I0, I1, I1x, I1y, u1, u2, I1wx, I1wy, grad, rho_c, y, start, stop):
    """`_warp_span` on images framed by PAD zeros: the 16 taps are always inside, no tests."""
    h, w = I0.shape
    for x in range(start, stop):
        mx = np.float32(x) + u1[y, x]
        my = np.float32(y) + u2[y, x]
        fx = np.floor(mx)
        fy = np.floor(my)
        wx0, wx1, wx2, wx3 = _cubic_weights(mx - fx)
        wy0, wy1, wy2, wy3 = _cubic_weights(my - fy)
        x0 = int(min(max(fx, -_FAR), np.float32(w) + _FAR)) - 1 + PAD
        y0 = int(min(max(fy, -_FAR), np.float32(h) + _FAR)) - 1 + PAD
        s0, s1, s2 = _F0, _F0, _F0
        for i in range(4):
            wy = wy0 if i == 0 else (wy1 if i == 1 else (wy2 if i == 2 else wy3))
            yi = y0 + i
            s0 += (I1[yi, x0] * wx0 + I1[yi, x0 + 1] * wx1 + I1[yi, x0 + 2] * wx2 + I1[yi, x0 + 3] * wx3) * wy
            s1 += (I1x[yi, x0] * wx0 + I1x[yi, x0 + 1] * wx1 + I1x[yi, x0 + 2] * wx2 + I1x[yi, x0 + 3] * wx3) * wy
            s2 += (I1y[yi, x0] * wx0 + I1y[yi, x0 + 1] * wx1 + I1y[yi, x0 + 2] * wx2 + I1y[yi, x0 + 3] * wx3) * wy
        I1wx[y, x] = s1
        I1wy[y, x] = s2
        grad[y, x] = s1 * s1 + s2 * s2
        rho_c[y, x] = s0 - s1 * u1[y, x] - s2 * u2[y, x] - I0[y, x]


@_jit
def pad_images(I1, I1x, I1y, framed):
    """framed (3, H+2*PAD, W+2*PAD) = I1, I1x, I1y each inside a frame of PAD zeros."""
    h, w = I1.shape
    framed[:] = 0
    for k, img in enumerate((I1, I1x, I1y)):
        for y in range(h):
            framed[k, y + PAD, PAD : PAD + w] = img[y]


@_jit
def warp_per_pixel(I0, I1, I1x, I1y, u1, u2, I1wx, I1wy, grad, rho_c):
    """`warp` one pixel at a time, the general path only: the reference `warp` must equal bit for bit."""
    for y in range(I0.shape[0]):
        _warp_span(I0, I1, I1x, I1y, u1, u2, I1wx, I1wy, grad, rho_c, y, 0, I0.shape[1])


# Runs shorter than this take the per-pixel path: LLVM allows no runtime alias checks in a loop of
# fewer than 16 iterations, and a vector loop costs a few hundred cycles to enter.
_MIN_RUN = 16
# The warp works on a row in chunks of at most _CHUNK pixels, through one flat scratch buffer of
# segments _SEG floats apart (a compile-time constant): weights, displacements and the run's tap rows
# at constant offsets from one base. LLVM then proves most of the vector loop's accesses apart at
# compile time; with the taps read from the image rows it compared ~30 address ranges at run time
# (6,000 instructions per loop entry, measured) and, by default, refused to vectorize at all.
_CHUNK = 512
_SEG = _CHUNK + 16  # whole cache lines: the segments start on one where t does
_WX, _WY, _DX, _DY, _TAPS = 0, 4, 8, 9, 10  # segment numbers: 4 + 4 weights, 2 displacements, 15 tap rows
SCRATCH_FLOATS = (_TAPS + 15) * _SEG
# The vector loop indexes with unsigned integers: numba wraps a signed index that might be negative
# (idx < 0 -> idx + len), which LLVM then cannot see as consecutive loads.
_U1, _U2, _U3, _U4 = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4)
_OW = tuple(np.uint64(k * _SEG) for k in range(_TAPS))  # weight and displacement segments
_OT = tuple(np.uint64((_TAPS + k) * _SEG) for k in range(15))  # tap rows: I1 x5, I1x x5, I1y x5


@_inline
def _taps5(t, c, k0, k1, k2, k3, k4):
    """One tap row of the 5-wide window: OpenCV's 4 taps in its order, a zero-weight tap before or after."""
    return (((t[c] * k0 + t[c + _U1] * k1) + t[c + _U2] * k2) + t[c + _U3] * k3) + t[c + _U4] * k4


@_inline
def _shifted(shift, w0, w1, w2, w3):
    """The 4 cubic weights in a 5-slot window, at slot 0 (shift False) or 1 (shift True)."""
    return (_F0 if shift else w0, w0 if shift else w1, w1 if shift else w2, w2 if shift else w3, w3 if shift else _F0)


@_inline
def _window(t, I1, I1x, I1y, r0, c0, n):
    """The run's 15 tap rows (I1, I1x, I1y, rows r0 .. r0+4, columns c0 .. c0+n-1) into the scratch's
    tap segments in one vectorized loop (a loop per row made the whole warp 1.04x slower)."""
    a0, a1, a2, a3, a4 = I1[r0, c0:], I1[r0 + 1, c0:], I1[r0 + 2, c0:], I1[r0 + 3, c0:], I1[r0 + 4, c0:]
    b0, b1, b2, b3, b4 = I1x[r0, c0:], I1x[r0 + 1, c0:], I1x[r0 + 2, c0:], I1x[r0 + 3, c0:], I1x[r0 + 4, c0:]
    d0, d1, d2, d3, d4 = I1y[r0, c0:], I1y[r0 + 1, c0:], I1y[r0 + 2, c0:], I1y[r0 + 3, c0:], I1y[r0 + 4, c0:]
    for i in range(n):  # indexed by the loop variable: no wraparound
        t[_TAPS * _SEG + i], t[(_TAPS + 1) * _SEG + i], t[(_TAPS + 2) * _SEG + i] = a0[i], a1[i], a2[i]
        t[(_TAPS + 3) * _SEG + i], t[(_TAPS + 4) * _SEG + i] = a3[i], a4[i]
        t[(_TAPS + 5) * _SEG + i], t[(_TAPS + 6) * _SEG + i], t[(_TAPS + 7) * _SEG + i] = b0[i], b1[i], b2[i]
        t[(_TAPS + 8) * _SEG + i], t[(_TAPS + 9) * _SEG + i] = b3[i], b4[i]
        t[(_TAPS + 10) * _SEG + i], t[(_TAPS + 11) * _SEG + i], t[(_TAPS + 12) * _SEG + i] = d0[i], d1[i], d2[i]
        t[(_TAPS + 13) * _SEG + i], t[(_TAPS + 14) * _SEG + i] = d3[i], d4[i]


@_jit
def warp(I0, I1, I1x, I1y, u1, u2, I1wx, I1wy, grad, rho_c, t):
    """I1, I1x, I1y sampled at (x + u1, y + u2) with the cubic kernel (taps outside the image read 0),
    then grad = I1wx^2 + I1wy^2 and rho_c = I1w - I1wx * u1 - I1wy * u2 - I0 (calcGradRho).
    t: SCRATCH_FLOATS float32 scratch. u1, u2, I1wx .. rho_c may be wider than I0 (padded planes).
    Frames the images then calls `warp_framed` (the solver frames them once per level)."""
    h, w = I0.shape
    framed = np.empty((3, h + 2 * PAD, w + 2 * PAD), np.float32)
    pad_images(I1, I1x, I1y, framed)
    warp_framed(I0, framed, u1, u2, I1wx, I1wy, grad, rho_c, t)


@_jit
def warp_framed(I0, framed, u1, u2, I1wx, I1wy, grad, rho_c, t):
    """`warp` of the images framed by `pad_images`."""
    h, w = I0.shape
    I1, I1x, I1y = framed[0], framed[1], framed[2]
    for y in range(h):
        u1r, u2r, i0r = u1[y], u2[y], I0[y]
        o1, o2, og, orho = I1wx[y], I1wy[y], grad[y], rho_c[y]
        for cs in range(0, w, _CHUNK):
            ce = min(cs + _CHUNK, w)
            cu1, cu2 = u1r[cs:ce], u2r[cs:ce]  # indexed by the loop variable: no wraparound test, no gather
            for i in range(ce - cs):  # vectorized: the chunk's sub-pixel weights and integer displacements
                x = cs + i
                mx = np.float32(x) + cu1[i]
                my = np.float32(y) + cu2[i]
                fx = np.floor(mx)
                fy = np.floor(my)
                (t[_WX * _SEG + i], t[(_WX + 1) * _SEG + i], t[(_WX + 2) * _SEG + i], t[(_WX + 3) * _SEG + i]) = (
                    _cubic_weights(mx - fx)
                )
                (t[_WY * _SEG + i], t[(_WY + 1) * _SEG + i], t[(_WY + 2) * _SEG + i], t[(_WY + 3) * _SEG + i]) = (
                    _cubic_weights(my - fy)
                )
                t[_DX * _SEG + i] = min(max(fx, -_FAR), np.float32(w) + _FAR) - np.float32(x)  # small ints: exact
                t[_DY * _SEG + i] = min(max(fy, -_FAR), np.float32(h) + _FAR) - np.float32(y)
            x = cs
            while x < ce:
                # the longest run from x whose displacements span at most 1 px on each axis: its pixels'
                # 4x4 taps all lie in one 5x5 window that slides with x, so a lane's taps are plain loads
                lo_x = hi_x = t[_DX * _SEG + x - cs]
                lo_y = hi_y = t[_DY * _SEG + x - cs]
                end = x + 1
                while end < ce:
                    vx, vy = t[_DX * _SEG + end - cs], t[_DY * _SEG + end - cs]
                    nlo_x, nhi_x = min(lo_x, vx), max(hi_x, vx)
                    nlo_y, nhi_y = min(lo_y, vy), max(hi_y, vy)
                    if nhi_x - nlo_x > _F1 or nhi_y - nlo_y > _F1:
                        break
                    lo_x, hi_x, lo_y, hi_y = nlo_x, nhi_x, nlo_y, nhi_y
                    end += 1
                dx, dy = int(lo_x), int(lo_y)
                # the window's first row and, for pixel x + l, first column x + l + dx - 1, in the frame
                r0 = y + dy - 1 + PAD
                first, n = x, end - x
                if n >= _MIN_RUN:
                    c0 = first + dx - 1 + PAD
                    _window(t, I1, I1x, I1y, r0, c0, n + 4)
                    wt = t[first - cs :]  # weights and displacements of pixel first + l at wt[seg * _SEG + l]
                    v1, v2, vg, vrho = o1[first:], o2[first:], og[first:], orho[first:]
                    vu1, vu2, vi0 = u1r[first:], u2r[first:], i0r[first:]
                    flo_x, flo_y = np.float32(dx), np.float32(dy)
                    for l in range(np.uint64(n)):  # noqa: E741 - l: the lane, as in the comments; vectorized, 8 pixels a step
                        kx0, kx1, kx2, kx3, kx4 = _shifted(
                            wt[_OW[_DX] + l] != flo_x, wt[_OW[0] + l], wt[_OW[1] + l], wt[_OW[2] + l], wt[_OW[3] + l]
                        )
                        ky0, ky1, ky2, ky3, ky4 = _shifted(
                            wt[_OW[_DY] + l] != flo_y, wt[_OW[4] + l], wt[_OW[5] + l], wt[_OW[6] + l], wt[_OW[7] + l]
                        )
                        # s = sum_i r_i * wy_i from 0, in OpenCV's order; the zero-weight terms add +-0.
                        # Unrolled by hand: a loop over the 5 rows would be the innermost loop, the one
                        # LLVM vectorizes, instead of this loop over pixels.
                        s0 = _F0 + _taps5(t, _OT[0] + l, kx0, kx1, kx2, kx3, kx4) * ky0
                        s1 = _F0 + _taps5(t, _OT[5] + l, kx0, kx1, kx2, kx3, kx4) * ky0
                        s2 = _F0 + _taps5(t, _OT[10] + l, kx0, kx1, kx2, kx3, kx4) * ky0
                        s0 += _taps5(t, _OT[1] + l, kx0, kx1, kx2, kx3, kx4) * ky1
                        s1 += _taps5(t, _OT[6] + l, kx0, kx1, kx2, kx3, kx4) * ky1
                        s2 += _taps5(t, _OT[11] + l, kx0, kx1, kx2, kx3, kx4) * ky1
                        s0 += _taps5(t, _OT[2] + l, kx0, kx1, kx2, kx3, kx4) * ky2
                        s1 += _taps5(t, _OT[7] + l, kx0, kx1, kx2, kx3, kx4) * ky2
                        s2 += _taps5(t, _OT[12] + l, kx0, kx1, kx2, kx3, kx4) * ky2
                        s0 += _taps5(t, _OT[3] + l, kx0, kx1, kx2, kx3, kx4) * ky3
                        s1 += _taps5(t, _OT[8] + l, kx0, kx1, kx2, kx3, kx4) * ky3
                        s2 += _taps5(t, _OT[13] + l, kx0, kx1, kx2, kx3, kx4) * ky3
                        s0 += _taps5(t, _OT[4] + l, kx0, kx1, kx2, kx3, kx4) * ky4
                        s1 += _taps5(t, _OT[9] + l, kx0, kx1, kx2, kx3, kx4) * ky4
                        s2 += _taps5(t, _OT[14] + l, kx0, kx1, kx2, kx3, kx4) * ky4
                        v1[l] = s1
                        v2[l] = s2
                        vg[l] = s1 * s1 + s2 * s2
                        vrho[l] = s0 - s1 * vu1[l] - s2 * vu2[l] - vi0[l]
                else:
                    _warp_span_framed(I0, I1, I1x, I1y, u1, u2, I1wx, I1wy, grad, rho_c, y, x, end)
                x = end
