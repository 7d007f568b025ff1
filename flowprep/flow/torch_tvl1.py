"""TV-L1 optical flow in PyTorch, batched over frame pairs, following OpenCV's CPU implementation.

(One file of ~500 lines on purpose: it is OpenCV's `tvl1flow.cpp` step by step, read side by side
with it; cutting it would separate each step from the ones its arithmetic must agree with.)

The algorithm is Zach, Pock and Bischof (2007) in the form of Sanchez Perez et al. (IPOL 2013), as
OpenCV contrib codes it in `modules/optflow/src/tvl1flow.cpp` (`OpticalFlowDual_TVL1::calc` and
`procOneScale`). Every step below names the OpenCV function it mirrors; the details that move the
result (how the pyramid is resized and its sizes rounded, remap's bicubic kernel and zero border,
the one-sided gradients at the image border, where the median filter runs, the per-pair stopping
test) are OpenCV's, so that the two agree to about 0.01 px (docs/flow_backends.md).

Batching: all pairs of a `compute` call share one (B, H, W) tensor. OpenCV stops iterating a pair
when the summed squared update of its flow falls below epsilon^2 * H * W; here each pair carries an
`active` flag, a converged pair's state is frozen (masked updates), and the loop ends when no pair
is active, so each pair gets exactly the iterations it would get alone.

Process-wide: the first compiled solver (`TVL1Solver(compiled=True)`, the default on CUDA) raises
torch._dynamo's recompile limit to RECOMPILE_LIMIT for the whole process (`allow_recompiles`).
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from flowprep.flow.base import FlowBackend, importable
from flowprep.flow.opencv_tvl1 import OPENCV_TVL1_DEFAULTS, merge_params

log = logging.getLogger(__name__)

_MIN_SCALE_SIDE = 16  # OpenCV stops building the pyramid below 16 px (either side)
_CUBIC_A = -0.75  # cv::interpolateCubic's Keys kernel parameter
_FLT_EPSILON = float(np.finfo(np.float32).eps)


# ---- image resampling, as cv::resize / cv::remap / cv::medianBlur do it ------------------------


def _linear_taps(src_len: int, dst_len: int, scale: float):
    """1-D taps of cv::resize INTER_LINEAR: (i0, i1, w1) with src = (dst + 0.5) * scale - 0.5.

    `scale` is src/dst as OpenCV uses it (1/fx when fx is given, else the size ratio); positions
    outside the source clamp to the border pixel with weight 1, as OpenCV's border columns do.
    """
    pos = ((np.arange(dst_len, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0).astype(np.float32)
    low, high = i0 < 0, i0 >= src_len - 1
    frac[low | high] = 0.0
    i0 = np.clip(i0, 0, src_len - 1)
    i1 = np.minimum(i0 + 1, src_len - 1)
    return i0, i1, frac


def resize_linear(img, out_hw: tuple[int, int], scale_yx: tuple[float, float]):
    """cv::resize(..., INTER_LINEAR) of float images (..., H, W): rows first, then columns."""
    import torch

    h, w = img.shape[-2:]
    x0, x1, fx = (torch.from_numpy(a).to(img.device) for a in _linear_taps(w, out_hw[1], scale_yx[1]))
    y0, y1, fy = (torch.from_numpy(a).to(img.device) for a in _linear_taps(h, out_hw[0], scale_yx[0]))
    rows = img[..., x0] * (1 - fx) + img[..., x1] * fx
    return rows[..., y0, :] * (1 - fy)[:, None] + rows[..., y1, :] * fy[:, None]


def pyramid_down(img, scale_step: float):
    """One level down: cv::resize(src, dst, Size(), s, s, INTER_LINEAR), size rounded as OpenCV."""
    h, w = img.shape[-2:]
    out_hw = (int(round(h * scale_step)), int(round(w * scale_step)))
    return resize_linear(img, out_hw, (1.0 / scale_step, 1.0 / scale_step))


def resize_to(img, out_hw: tuple[int, int]):
    """cv::resize(src, dst, dsize, 0, 0, INTER_LINEAR): the scale is the size ratio."""
    h, w = img.shape[-2:]
    return resize_linear(img, out_hw, (h / out_hw[0], w / out_hw[1]))


def _cubic_weights(frac):
    """(..., 4) weights of cv::interpolateCubic (Keys kernel, A = -0.75) at sub-pixel offsets `frac`."""
    import torch

    a = _CUBIC_A
    c0 = ((a * (frac + 1) - 5 * a) * (frac + 1) + 8 * a) * (frac + 1) - 4 * a
    c1 = ((a + 2) * frac - (a + 3)) * frac * frac + 1
    c2 = ((a + 2) * (1 - frac) - (a + 3)) * (1 - frac) * (1 - frac) + 1
    return torch.stack([c0, c1, c2, 1 - c0 - c1 - c2], dim=-1)


def remap_cubic(imgs, map_x, map_y, subpixel_grid: int | None = None):
    """cv::remap(img, map_x, map_y, INTER_CUBIC, BORDER_CONSTANT 0) of C images at once.

    imgs (B, C, H, W); map_x, map_y (B, H, W) absolute source positions in px; taps outside the
    image read 0. OpenCV 5 samples at the exact float position; OpenCV 4 first rounds it to a grid
    of 1/32 px (INTER_TAB_SIZE): pass subpixel_grid=32 for that.
    """
    import torch

    b, c, h, w = imgs.shape
    if subpixel_grid:
        map_x = torch.round(map_x * subpixel_grid) / subpixel_grid  # cvRound: half to even
        map_y = torch.round(map_y * subpixel_grid) / subpixel_grid
    fx, fy = torch.floor(map_x), torch.floor(map_y)
    wx = _cubic_weights(map_x - fx)  # (B, H, W, 4)
    wy = _cubic_weights(map_y - fy)
    # clamp far-away positions so the int conversion cannot overflow; their taps are all outside
    x0 = fx.clamp(-8, w + 8).to(torch.int64) - 1  # first of the 4 taps
    y0 = fy.clamp(-8, h + 8).to(torch.int64) - 1
    flat = imgs.reshape(b, c, h * w)
    out = torch.zeros_like(imgs)
    for i in range(4):
        yi = y0 + i
        y_ok = (yi >= 0) & (yi < h)
        row = torch.zeros_like(imgs)
        for j in range(4):
            xj = x0 + j
            ok = y_ok & (xj >= 0) & (xj < w)
            index = (yi.clamp(0, h - 1) * w + xj.clamp(0, w - 1)).reshape(b, 1, h * w).expand(b, c, h * w)
            tap = torch.gather(flat, 2, index).reshape(b, c, h, w)
            row = row + torch.where(ok[:, None], tap, 0.0) * wx[:, None, ..., j]
        out = out + row * wy[:, None, ..., i]
    return out


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Comparators (lo, hi) of Batcher's odd-even merge sort of n values (any n)."""
    pairs, p = [], 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def _median_network(n: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """The sorting network pruned to what the middle output needs: (lo, hi, keep_min, keep_max)."""
    needed, kept = {n // 2}, []
    for lo, hi in reversed(_batcher_pairs(n)):
        keep_min, keep_max = lo in needed, hi in needed
        if keep_min or keep_max:
            kept.append((lo, hi, keep_min, keep_max))
            needed |= {lo, hi}
    return tuple(reversed(kept))


def median_network_source(n: int, low: str, high: str, indent: str) -> list[str]:
    """The pruned network as straight-line source, for the numba and Triton kernel generators:
    `low` / `high` are format strings of `{a}` and `{b}` (e.g. "tl.minimum({a}, {b})"), values a0..a{n-1}."""
    lines = []
    for lo, hi, keep_min, keep_max in _median_network(n):
        a, b = f"a{lo}", f"a{hi}"
        if keep_min and keep_max:
            lines.append(f"{indent}{a}, {b} = {low.format(a=a, b=b)}, {high.format(a=a, b=b)}")
        elif keep_min:
            lines.append(f"{indent}{a} = {low.format(a=a, b=b)}")
        else:
            lines.append(f"{indent}{b} = {high.format(a=a, b=b)}")
    return lines


# OpenCV's medianBlur takes ksize 3 or 5 on float images; built once (a plain dict reads well in torch.compile)
_MEDIAN_NETWORKS = {k * k: _median_network(k * k) for k in (3, 5)}


def median_blur(u, ksize: int):
    """cv::medianBlur(u, u, ksize) of float images (B, H, W): window median, border replicated.

    A pruned sorting network (min/max only): elementwise, so torch.compile fuses it, and far faster
    than sorting ksize^2 values per pixel.
    """
    import torch
    import torch.nn.functional as F

    h, w = u.shape[-2:]
    r = ksize // 2
    padded = F.pad(u[:, None], (r, r, r, r), mode="replicate")[:, 0]
    vals = [padded[:, i : i + h, j : j + w] for i in range(ksize) for j in range(ksize)]
    for lo, hi, keep_min, keep_max in _MEDIAN_NETWORKS[ksize * ksize]:
        a, b = vals[lo], vals[hi]
        if keep_min:
            vals[lo] = torch.minimum(a, b)
        if keep_max:
            vals[hi] = torch.maximum(a, b)
    return vals[ksize * ksize // 2]


# ---- derivatives, as tvl1flow.cpp codes them -------------------------------------------------


def centered_gradient(img):
    """tvl1flow.cpp centeredGradient: 0.5 * (next - prev), one-sided half differences at the border."""
    import torch.nn.functional as F

    padded = F.pad(img[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    dx = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
    dy = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    return dx, dy


def forward_gradient(u):
    """tvl1flow.cpp forwardGradient: u[x+1] - u[x], 0 on the last column / row."""
    import torch.nn.functional as F

    dx = F.pad(u[:, :, 1:] - u[:, :, :-1], (0, 1))
    dy = F.pad(u[:, 1:, :] - u[:, :-1, :], (0, 0, 0, 1))
    return dx, dy


def divergence(v1, v2):
    """tvl1flow.cpp divergence: backward differences with v = 0 left of column 0 / above row 0."""
    import torch.nn.functional as F

    return v1 - F.pad(v1[:, :, :-1], (1, 0)) + v2 - F.pad(v2[:, :-1, :], (0, 0, 1, 0))


# ---- one primal-dual iteration ---------------------------------------------------------------


def tvl1_step(u1, u2, p11, p12, p21, p22, I1wx, I1wy, grad, rho_c, active, l_t: float, theta: float, taut: float):
    """One inner iteration of procOneScale (estimateV, divergence, estimateU, forwardGradient,
    estimateDualVariables) for all pairs; pairs with active=False keep their state (active=None:
    all pairs are active, which saves the masking).

    Returns the new (u1, u2, p11, p12, p21, p22) and each pair's summed squared flow update (B,).
    """
    import torch

    # estimateV: the thresholding step on the linearized data term
    rho = rho_c + (I1wx * u1 + I1wy * u2)
    lt_grad = l_t * grad
    safe_grad = torch.where(grad > _FLT_EPSILON, grad, 1.0)
    fi = torch.where(
        rho < -lt_grad, l_t, torch.where(rho > lt_grad, -l_t, torch.where(grad > _FLT_EPSILON, -rho / safe_grad, 0.0))
    )
    v1 = u1 + fi * I1wx
    v2 = u2 + fi * I1wy

    # estimateU: u = v + theta * div(p); the error is the summed squared update of the pair
    new_u1 = v1 + theta * divergence(p11, p12)
    new_u2 = v2 + theta * divergence(p21, p22)
    error = ((new_u1 - u1) ** 2 + (new_u2 - u2) ** 2).sum(dim=(1, 2))

    # estimateDualVariables: projected gradient ascent on p with the new u's forward gradient
    u1x, u1y = forward_gradient(new_u1)
    u2x, u2y = forward_gradient(new_u2)
    ng1 = 1.0 + taut * torch.hypot(u1x, u1y)
    ng2 = 1.0 + taut * torch.hypot(u2x, u2y)
    new_p11 = (p11 + taut * u1x) / ng1
    new_p12 = (p12 + taut * u1y) / ng1
    new_p21 = (p21 + taut * u2x) / ng2
    new_p22 = (p22 + taut * u2y) / ng2

    state = (new_u1, new_u2, new_p11, new_p12, new_p21, new_p22)
    if active is not None:
        keep = active[:, None, None]
        state = tuple(torch.where(keep, new, old) for new, old in zip(state, (u1, u2, p11, p12, p21, p22)))
    return state + (error,)


def warp_linearize(I1_stack, I0, u1, u2, xs, ys):
    """buildFlowMap + remap(INTER_CUBIC) of (I1, I1x, I1y), then calcGradRho: the linearized data term.

    I1_stack (B, 3, H, W); I0, u1, u2 (B, H, W); xs (W,), ys (H, 1) pixel coordinates. Returns
    I1wx, I1wy, grad = |grad I1w|^2 and rho_c = I1w - grad I1w . u - I0, each (B, H, W).
    """
    I1w, I1wx, I1wy = remap_cubic(I1_stack, xs + u1, ys + u2).unbind(1)
    grad = I1wx * I1wx + I1wy * I1wy
    rho_c = I1w - I1wx * u1 - I1wy * u2 - I0
    return I1wx, I1wy, grad, rho_c


# ---- the solver ------------------------------------------------------------------------------


class TVL1Solver:
    """Batched TV-L1 with OpenCV's parameters; `__call__(I0, I1)` float (B,H,W) -> (u1, u2) px.

    `compiled` runs the inner iteration and the median filter through torch.compile;
    `sync_every` is how many inner iterations run between host checks of "any pair still active"
    (the result does not depend on it: converged pairs are masked, the check only ends the loop).
    `kernels` replaces the inner iteration and the median filter: an object with `step` (tvl1_step's
    arguments and results; it may update the state in place) and `median` (median_blur's), and
    optionally `warp` (warp_linearize's), e.g. `triton_tvl1.TritonKernels()`.
    """

    def __init__(self, params: dict, compiled: bool = False, sync_every: int = 1, kernels=None):
        if params["gamma"] != 0:
            raise ValueError(f"torch TV-L1 implements gamma = 0 only (OpenCV's default); got gamma={params['gamma']!r}")
        if params["use_initial_flow"]:
            raise ValueError("torch TV-L1 does not take an initial flow (use_initial_flow=False)")
        if params["median_filtering"] not in (0, 1, 3, 5):
            raise ValueError(
                "median_filtering must be 0/1 (off), 3 or 5, as OpenCV allows on float "
                f"flow; got {params['median_filtering']!r}"
            )
        self.p = params
        if compiled:
            allow_recompiles()
        self.step = _compiled(tvl1_step) if compiled else tvl1_step
        self.median = _compiled(median_blur) if compiled else median_blur
        self.warp = warp_linearize
        if kernels is not None:
            self.step, self.median = kernels.step, kernels.median
            self.warp = getattr(kernels, "warp", warp_linearize)
        self.sync_every = max(1, int(sync_every))
        self.iterations_run = 0  # inner iterations executed in the last call (for benchmarks)
        self.pixel_steps = 0  # sum over those iterations of the level's H * W (bandwidth floor)

    def __call__(self, I0, I1):
        import torch

        p = self.p
        # calc: the pyramid (I0s, I1s), stopping below 16 px as OpenCV does
        I0s, I1s = [I0], [I1]
        for _ in range(1, int(p["nscales"])):
            down0 = pyramid_down(I0s[-1], p["scale_step"])
            if down0.shape[-1] < _MIN_SCALE_SIDE or down0.shape[-2] < _MIN_SCALE_SIDE:
                break
            I0s.append(down0)
            I1s.append(pyramid_down(I1s[-1], p["scale_step"]))

        self.iterations_run = self.pixel_steps = 0
        u1 = torch.zeros_like(I0s[-1])
        u2 = torch.zeros_like(I0s[-1])
        for s in range(len(I0s) - 1, -1, -1):
            u1, u2 = self._one_scale(I0s[s], I1s[s], u1, u2)
            if s == 0:
                break
            # zoom the flow to the next finer scale and scale its values by 1/scale_step
            finer_hw = tuple(I0s[s - 1].shape[-2:])
            u1 = resize_to(u1, finer_hw) * (1.0 / p["scale_step"])
            u2 = resize_to(u2, finer_hw) * (1.0 / p["scale_step"])
        return u1, u2

    def _one_scale(self, I0, I1, u1, u2):
        """procOneScale: warps x (outer x inner) iterations with the per-pair stopping test."""
        import torch

        p = self.p
        b, h, w = I0.shape
        scaled_epsilon = float(np.float32(p["epsilon"] * p["epsilon"] * h * w))
        l_t = float(np.float32(p["lambda"] * p["theta"]))
        taut = float(np.float32(p["tau"] / p["theta"]))
        theta = float(np.float32(p["theta"]))
        median = int(p["median_filtering"])

        I1x, I1y = centered_gradient(I1)
        I1_stack = torch.stack([I1, I1x, I1y], dim=1)
        p11, p12, p21, p22 = (torch.zeros_like(u1) for _ in range(4))
        xs = torch.arange(w, device=I0.device, dtype=I0.dtype)
        ys = torch.arange(h, device=I0.device, dtype=I0.dtype)[:, None]

        for _ in range(int(p["warps"])):
            # warp I1 and its gradient with the current flow, linearize the data term around it
            I1wx, I1wy, grad, rho_c = self.warp(I1_stack, I0, u1, u2, xs, ys)

            active = torch.ones(b, dtype=torch.bool, device=I0.device)  # error = FLT_MAX
            all_active = True  # known on the host without a device sync: no masking needed
            any_active = True
            for _ in range(int(p["outer_iterations"])):
                if not any_active:
                    break
                if median > 1:
                    if all_active:
                        u1, u2 = self.median(u1, median), self.median(u2, median)
                    else:
                        keep = active[:, None, None]
                        u1 = torch.where(keep, self.median(u1, median), u1)
                        u2 = torch.where(keep, self.median(u2, median), u2)
                for n_inner in range(int(p["inner_iterations"])):
                    u1, u2, p11, p12, p21, p22, error = self.step(
                        u1,
                        u2,
                        p11,
                        p12,
                        p21,
                        p22,
                        I1wx,
                        I1wy,
                        grad,
                        rho_c,
                        None if all_active else active,
                        l_t,
                        theta,
                        taut,
                    )
                    active = active & (error > scaled_epsilon)
                    self.iterations_run += 1
                    self.pixel_steps += h * w
                    if (n_inner + 1) % self.sync_every == 0:
                        all_active = bool(active.all())
                        any_active = all_active or bool(active.any())
                        if not any_active:
                            break
                    else:
                        all_active = False
                else:
                    all_active = bool(active.all())
                    any_active = all_active or bool(active.any())
        return u1, u2


# ---- the backend -----------------------------------------------------------------------------


class TorchTVL1(FlowBackend):
    """TV-L1 in PyTorch, many pairs per call: on CUDA when torch sees a device, else on the CPU."""

    name = "torch"
    needs_gpu = False  # CUDA when torch sees a device, else the CPU (`torch-cuda` needs one)

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return importable("torch", "pip install torch")

    def __init__(self, device: str | None = None, compile: bool | None = None, batch: int | None = None, **overrides):
        """OpenCV-named TV-L1 overrides; `device` ('cuda', 'cpu', 'cuda:1'; default: CUDA if any),
        `compile` (torch.compile the hot loop; default: on CUDA only) and `batch` (preferred pairs
        per `compute` call) tune the run, not the result."""
        import torch

        self._params = merge_params(OPENCV_TVL1_DEFAULTS, overrides)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        on_cuda = self.device.type == "cuda"
        self.compiled = on_cuda if compile is None else bool(compile)
        self.preferred_batch = int(batch or (64 if on_cuda else 4))
        # On CUDA, asking "is any pair still iterating?" costs a device sync: ask every 10 steps.
        self._solver = TVL1Solver(self._params, compiled=self.compiled, sync_every=10 if on_cuda else 1)

    def params(self) -> dict:
        import torch

        impl = f"flowprep torch TV-L1 (torch {torch.__version__}, {self.device.type}"
        return {**self._params, "impl": impl + (", compiled)" if self.compiled else ")")}

    def compute(self, prev_u8: np.ndarray, next_u8: np.ndarray) -> np.ndarray:
        """uint8 (B,H,W) x2 -> float32 (B,H,W,2) px."""
        prev_u8, next_u8 = np.asarray(prev_u8), np.asarray(next_u8)
        if prev_u8.shape != next_u8.shape or prev_u8.ndim != 3:
            raise ValueError(f"expected two uint8 (B,H,W) arrays of one shape, got {prev_u8.shape} and {next_u8.shape}")
        if prev_u8.shape[0] == 0:
            return np.zeros(prev_u8.shape + (2,), np.float32)
        if not self.compiled:
            return self._compute(prev_u8, next_u8)
        # Compiled code is specialized to its shapes: run every batch at exactly preferred_batch pairs
        # (a short one padded with copies of its last pair, which converge with it and are dropped),
        # so a dataset compiles once per pyramid level instead of once per leftover batch size.
        size = self.preferred_batch
        flows = []
        for start in range(0, prev_u8.shape[0], size):
            a, b = prev_u8[start : start + size], next_u8[start : start + size]
            n = a.shape[0]
            if n < size:
                pad = np.full(size - n, n - 1)
                a, b = np.concatenate([a, a[pad]]), np.concatenate([b, b[pad]])
            flows.append(self._compute(a, b)[:n])
        return np.concatenate(flows)

    def _compute(self, prev_u8: np.ndarray, next_u8: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            I0 = torch.from_numpy(np.ascontiguousarray(prev_u8)).to(self.device).float()
            I1 = torch.from_numpy(np.ascontiguousarray(next_u8)).to(self.device).float()
            try:
                u1, u2 = self._solver(I0, I1)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as exc:  # torch.compile can fail on a setup it does not support
                if not self.compiled:
                    raise
                log.warning(
                    "torch.compile failed (%s: %s); torch TV-L1 goes on without it (same flow, slower)",
                    type(exc).__name__,
                    exc,
                )
                self.compiled = False
                self._solver = TVL1Solver(self._params, compiled=False, sync_every=self._solver.sync_every)
                u1, u2 = self._solver(I0, I1)
            return torch.stack([u1, u2], dim=-1).cpu().numpy()


def no_cuda_driver() -> str:
    """Why CUDA cannot be available on this machine, from the OS alone ('' when it may be): Linux needs the
    NVIDIA driver's device files (or WSL2's /dev/dxg), macOS has no CUDA."""
    import os
    import sys

    if sys.platform == "darwin":
        return "macOS has no CUDA"
    if sys.platform.startswith("linux") and not any(
        os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version", "/dev/dxg")
    ):
        return "no NVIDIA driver on this machine (no /dev/nvidiactl or /proc/driver/nvidia)"
    return ""


class TorchCudaTVL1(TorchTVL1):
    """The torch backend pinned to CUDA: unavailable (an error, not a CPU run) without a device."""

    name = "torch-cuda"
    needs_gpu = True

    @classmethod
    def available(cls) -> tuple[bool, str]:
        missing = no_cuda_driver()
        if missing:  # said without importing torch: `auto` on a CPU node would pay ~2.5 s for it
            return False, missing
        ok, reason = super().available()
        if not ok:
            return ok, reason
        import torch

        try:
            if not torch.cuda.is_available():
                return False, f"torch {torch.__version__} sees no CUDA device"
        except Exception as exc:  # a broken driver must not crash `available()`
            return False, f"torch.cuda failed: {exc}"
        return True, ""

    def __init__(self, device: str | None = None, **kwargs):
        if device is not None and not str(device).startswith("cuda"):
            raise ValueError(f"torch-cuda runs on a CUDA device, not {device!r} (use the 'torch' backend)")
        super().__init__(device=device or "cuda", **kwargs)


# Each pyramid level (and batch size, mask or not) of a compiled function compiles once: more
# specializations than torch._dynamo's default limit of 8 recompiles per function allows.
RECOMPILE_LIMIT = 256


@functools.cache
def allow_recompiles() -> None:
    """Process-wide, once: raise torch._dynamo's recompile limit to at least RECOMPILE_LIMIT (never lowers it)."""
    import torch

    config = torch._dynamo.config
    for knob in ("recompile_limit", "cache_size_limit"):  # the name of torch >= 2.6, and of older ones
        if hasattr(config, knob):
            setattr(config, knob, max(getattr(config, knob), RECOMPILE_LIMIT))


def _compiled(fn):
    """`fn` through torch.compile with static shapes: a few fused kernels per pass instead of dozens
    of small ones (dynamic shapes made 20x slower code on the CPU); see allow_recompiles."""
    import torch

    return torch.compile(fn, dynamic=False)
