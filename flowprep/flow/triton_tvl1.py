"""The torch TV-L1 with its inner iteration, median filter and warp as fused Triton kernels (`triton-cuda`).

`torch_tvl1.tvl1_step` runs one inner iteration as ~40 elementwise torch kernels, each a pass through
memory. Here the same iteration is two passes (`_triton_kernels`):
  pass 1  estimateV + divergence(p) + estimateU, u in place, per-tile partial sums of |du|^2
          reads u1 u2 p11 p12 p21 p22 I1wx I1wy grad rho_c, writes u1 u2      (12 planes)
  pass 2  forwardGradient(u) + estimateDualVariables, p in place; adds the partials up per pair
          reads u1 u2 p11 p12 p21 p22, writes p11 p12 p21 p22                 (10 planes)
22 float32 planes = 88 bytes per pixel per iteration. One pass is impossible in place: the dual
update needs the new u of the next row and column, which other tiles write. (A single pass with a
halo would need ping-pong copies of u and p, and frozen pairs would then have to be copied each
iteration; in place, a frozen pair's programs mask everything and cost nothing.)

The median filter is one kernel (the pruned sorting network of median_blur) and each warp one kernel
(cubic remap of I1 and its gradient + calcGradRho, ~50 torch passes over (B,3,H,W) planes otherwise).
The rest (pyramid, flow zoom, the stopping loop) is TVL1Solver's, so the flow follows OpenCV
exactly as the torch backend does; the step differs from tvl1_step only in the order of the float
additions of the stopping sum and in fused multiply-adds on the GPU.

Tests run the kernels on the CPU with TRITON_INTERPRET=1 (set before this module's `TritonKernels()`
first imports `_triton_kernels`).
"""

from __future__ import annotations

from flowprep.flow.base import importable
from flowprep.flow.torch_tvl1 import TorchCudaTVL1, TVL1Solver

# One program per 16 x 64 tile (1,024 pixels, 4 warps): whole 256-byte rows per load, and a 256x256
# image is 64 programs per pair. Tests pass smaller tiles so that tile borders fall inside the image.
BLOCK_HW = (16, 64)


class TritonKernels:
    """Drop-in `step`, `median` and `warp` for TVL1Solver(kernels=...), on float32 (B,H,W) tensors.

    step(u1, u2, p11, p12, p21, p22, I1wx, I1wy, grad, rho_c, active, l_t, theta, taut) has
    tvl1_step's arguments and results, but UPDATES u1, u2, p11..p22 IN PLACE and returns those same
    tensors, plus error: float32 (B,) the summed squared flow update of each pair (0 for pairs with
    active=False, whose state is untouched; active=None: all pairs active).
    median(u, ksize) is cv::medianBlur(u, ksize) of each image (a new tensor).
    warp(I1_stack, I0, u1, u2) is torch_tvl1.warp_linearize (the cubic remap and calcGradRho).
    """

    def __init__(self, block_hw: tuple[int, int] = BLOCK_HW, num_warps: int = 4):
        from flowprep.flow import _triton_kernels  # decorates the kernels (TRITON_INTERPRET is read now)

        self._k = _triton_kernels
        self.block_h, self.block_w = block_hw
        self.num_warps = num_warps
        self._scratch = {}  # (device, B, n_tiles) -> partial sums float32 (B, n_tiles)

    def _grid(self, h: int, w: int, b: int):
        tiles_w = -(-w // self.block_w)
        n_tiles = tiles_w * -(-h // self.block_h)
        return tiles_w, n_tiles, (n_tiles, b)

    def step(self, u1, u2, p11, p12, p21, p22, I1wx, I1wy, grad, rho_c, active, l_t: float, theta: float, taut: float):
        import triton

        b, h, w = u1.shape
        tiles_w, n_tiles, grid = self._grid(h, w, b)
        key = (u1.device, b, n_tiles)
        if key not in self._scratch:
            self._scratch[key] = u1.new_empty((b, n_tiles))
        partial = self._scratch[key]  # written by pass 1, read by pass 2: reused step after step
        error = u1.new_empty((b,))  # new each step: the caller may keep it (no kernel launch)
        has_mask = active is not None
        mask = active if has_mask else partial  # any pointer: the kernel does not read it
        common = {"HAS_MASK": has_mask, "BLOCK_H": self.block_h, "BLOCK_W": self.block_w, "num_warps": self.num_warps}
        for plane in (u1, u2, p11, p12, p21, p22):  # updated in place: no copy to make them contiguous
            if not plane.is_contiguous():
                raise ValueError(f"the TV-L1 state must be contiguous (B,H,W) tensors, got strides {plane.stride()}")
        data = (I1wx, I1wy, grad, rho_c)
        if any(t.shape != u1.shape or t.stride()[1:] != (w, 1) for t in data):
            data = tuple(t.contiguous() for t in data)
        self._k.primal_kernel[grid](
            u1,
            u2,
            p11,
            p12,
            p21,
            p22,
            *data,
            mask,
            partial,
            h,
            w,
            tiles_w,
            n_tiles,
            l_t,
            theta,
            *(t.stride(0) for t in data),
            **common,
        )
        self._k.dual_kernel[grid](
            u1,
            u2,
            p11,
            p12,
            p21,
            p22,
            mask,
            partial,
            error,
            h,
            w,
            tiles_w,
            n_tiles,
            taut,
            BLOCK_T=triton.next_power_of_2(n_tiles),
            **common,
        )
        return u1, u2, p11, p12, p21, p22, error

    def warp(self, I1_stack, I0, u1, u2, xs=None, ys=None):
        """torch_tvl1.warp_linearize in one kernel: (B,3,H,W) stack and (B,H,W) I0, u1, u2 ->
        I1wx, I1wy, grad, rho_c (B,H,W). xs, ys (the pixel grid) are computed in the kernel."""
        b, h, w = u1.shape
        tiles_w, _, grid = self._grid(h, w, b)
        out = [u1.new_empty(u1.shape) for _ in range(4)]
        self._k.warp_kernel[grid](
            I1_stack.contiguous(),
            I0.contiguous(),
            u1.contiguous(),
            u2.contiguous(),
            *out,
            h,
            w,
            tiles_w,
            BLOCK_H=self.block_h,
            BLOCK_W=self.block_w,
            num_warps=self.num_warps,
        )
        return tuple(out)

    def median(self, u, ksize: int):
        b, h, w = u.shape
        tiles_w, _, grid = self._grid(h, w, b)
        kernel = {3: self._k.median3_kernel, 5: self._k.median5_kernel}[ksize]
        out = u.new_empty(u.shape)
        kernel[grid](
            u.contiguous(), out, h, w, tiles_w, BLOCK_H=self.block_h, BLOCK_W=self.block_w, num_warps=self.num_warps
        )
        return out


class TritonCudaTVL1(TorchCudaTVL1):
    """torch-cuda with the fused Triton inner iteration and median: same parameters, same flow."""

    name = "triton-cuda"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        ok, reason = super().available()
        if not ok:
            return ok, reason
        return importable("triton", "it comes with CUDA builds of torch")

    def __init__(self, device: str | None = None, batch: int | None = None, **overrides):
        # no torch.compile: the hot loop is already fused, and a fixed batch size is not needed
        super().__init__(device=device, compile=False, batch=batch or 128, **overrides)
        self._solver = TVL1Solver(self._params, sync_every=10, kernels=TritonKernels())

    def params(self) -> dict:
        import torch
        import triton

        return {
            **self._params,
            "impl": f"flowprep triton TV-L1 (torch {torch.__version__}, triton {triton.__version__}, cuda)",
        }
