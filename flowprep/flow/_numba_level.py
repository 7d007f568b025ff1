"""One pyramid level of the fused CPU TV-L1 (`numba_tvl1`) in ONE call from Python: procOneScale's
whole loop (the gradients of I1, the warps, the outer iterations with their median filter and stopping
test, the inner loops) calling the same kernels in the same order as `FusedTVL1Solver._one_scale_py`,
so the flow is the same bits.

Driven from Python, a level costs ~2 us a kernel call (numba's argument unboxing: 7 fields an array)
times ~20 calls a level, ~175 a 256x256 pair; on the coarse levels (16..64 px) that is as much as the
kernels' own work.
"""

from __future__ import annotations

from flowprep.flow._median_networks import median3, median5
from flowprep.flow._numba_kernels import _FLT_MAX, centered_gradient, inner_loop, pad_replicate
from flowprep.flow._numba_warp import _jit, pad_images, warp_framed


@_jit
def solve_level(
    I0,
    I1,
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
    I1x,
    I1y,
    framed,
    err,
    edges,
    warp_scratch,
    padded,
    l_t,
    theta,
    taut,
    scaled_epsilon,
    warps,
    outer,
    inner,
    median,
):
    """procOneScale on a `numba_tvl1._Workspace`'s arrays (w .. rho_c: its `kernel_args()`), the flow
    (u1b, u2b) updated in place from the level's initial flow. padded: the median's (H+2r, W+2r) buffer,
    r = median // 2 (any 2-D float32 array where median <= 1). Returns the inner iterations run."""
    h, wp = I1wx.shape
    u1_full = u1b[wp : wp + h * wp].reshape((h, wp))
    u2_full = u2b[wp : wp + h * wp].reshape((h, wp))
    centered_gradient(I1, I1x, I1y)
    pad_images(I1, I1x, I1y, framed)
    # `_Workspace.start_level`: the duals 0, the flow's pad rows and columns 0
    p11b[:] = 0
    p12b[:] = 0
    p21b[:] = 0
    p22b[:] = 0
    for ub, u_full in ((u1b, u1_full), (u2b, u2_full)):
        ub[:wp] = 0
        ub[ub.size - wp :] = 0
        u_full[:, w:] = 0
    iterations = 0
    for _ in range(warps):
        warp_framed(I0, framed, u1_full, u2_full, I1wx, I1wy, grad, rho_c, warp_scratch)
        error = _FLT_MAX
        n_outer = 0
        while n_outer < outer and error > scaled_epsilon:
            if median > 1:
                radius = median // 2
                for u_full in (u1_full, u2_full):  # cv::medianBlur(u, u, median): reads the copy, writes u
                    pad_replicate(u_full, radius, padded)
                    if median == 5:
                        median5(padded, u_full)
                    else:
                        median3(padded, u_full)
            n, error = inner_loop(
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
                inner,
                err,
                edges,
            )
            iterations += n
            n_outer += 1
    return iterations
