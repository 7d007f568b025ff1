"""The fused Triton TV-L1 kernels (flowprep/flow/triton_tvl1.py) against the plain torch reference.

Without a GPU (CI) the kernels run on CPU tensors in Triton's interpreter: TRITON_INTERPRET=1 must be
set before the kernels are decorated (`@triton.jit` reads it then), so this module sets it before the
kernel module is imported, and reloads that module if another test imported it compiled. The
interpreter is slow (~30 ms per program), so arrays are small and tiles small enough that tile borders
fall inside the image. Where torch sees CUDA the same tests run the compiled kernels on the GPU.
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton", reason="triton is not installed (pip install triton; it ships with CUDA torch)")

ON_GPU = torch.cuda.is_available()
_interpret_before = os.environ.get("TRITON_INTERPRET")
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are decorated
    if "flowprep.flow._triton_kernels" in sys.modules:  # decorated for the GPU by an earlier import
        importlib.reload(sys.modules["flowprep.flow._triton_kernels"])

from flowprep import format as fmt  # noqa: E402
from flowprep.flow import _triton_kernels as K  # noqa: E402

# The kernels stay interpreted; the rest of the session (and its subprocesses) sees the old value.
if _interpret_before is None:
    os.environ.pop("TRITON_INTERPRET", None)
else:
    os.environ["TRITON_INTERPRET"] = _interpret_before
from flowprep.flow import torch_tvl1 as T  # noqa: E402
from flowprep.flow.opencv_tvl1 import OPENCV_TVL1_DEFAULTS  # noqa: E402
from flowprep.flow.triton_tvl1 import TritonKernels  # noqa: E402

DEVICE = "cuda" if ON_GPU else "cpu"
SHAPE_BHW = (2, 13, 20)  # with 8x16 tiles: 2x2 tiles per image, the last row and column partial
TILES_HW = (8, 16)
L_T, THETA, TAUT = 0.15 * 0.3, 0.3, 0.25 / 0.3  # lambda*theta, theta, tau/theta at OpenCV's defaults


def _random_problem(seed: int = 0):
    """A random TV-L1 state and linearized data term, float32 (B,H,W) each, that hits every case of
    the thresholding step (rho below / above +-lambda*theta*|grad|^2, between, and |grad|^2 = 0)."""
    g = torch.Generator().manual_seed(seed)

    def plane(scale):
        return (torch.randn(SHAPE_BHW, generator=g) * scale).to(DEVICE)

    state = [plane(1.0), plane(1.0)] + [plane(0.3) for _ in range(4)]  # u1 u2 p11 p12 p21 p22
    I1wx, I1wy = plane(2.0), plane(2.0)
    grad = I1wx * I1wx + I1wy * I1wy
    grad[:, :2] = 0.0  # flat rows: the FLT_EPSILON branch
    rho_c = plane(1.0)
    rho = rho_c + I1wx * state[0] + I1wy * state[1]
    for case in (rho < -L_T * grad, rho > L_T * grad, (rho.abs() <= L_T * grad) & (grad > 0), grad == 0):
        assert case.sum() > 20, "the random problem should exercise every case of estimateV"
    return state, (I1wx, I1wy, grad, rho_c)


def test_generated_median_kernels_are_in_sync():
    from pathlib import Path

    assert Path(K.__file__).read_text() == K.render(), (
        "run `python -m flowprep.flow._triton_kernels` to regenerate the median kernels"
    )


_COMPILE_FOR_SM90 = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from flowprep.flow import _triton_kernels as K

blocks = {"BLOCK_H": 16, "BLOCK_W": 64, "BLOCK_T": 64}
for kernel, masked in ((K.primal_kernel, False), (K.primal_kernel, True), (K.dual_kernel, False),
                       (K.dual_kernel, True), (K.median3_kernel, False), (K.median5_kernel, False),
                       (K.warp_kernel, False)):
    constexprs = {n: v for n, v in blocks.items() if n in kernel.arg_names}
    if "HAS_MASK" in kernel.arg_names:
        constexprs["HAS_MASK"] = masked
    signature = {n: "constexpr" if n in constexprs else "*i1" if n == "active_ptr" and masked
                 else "*fp32" if n.endswith("_ptr") else "fp32" if n in ("l_t", "theta", "taut") else "i32"
                 for n in kernel.arg_names}
    triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constexprs),
                   target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
print("compiled")
"""


@pytest.mark.skipif(ON_GPU, reason="on a GPU every other test here compiles the kernels")
def test_kernels_compile_for_an_h100_without_a_gpu():
    """The interpreter runs Python, not the compiler: a kernel it accepts can still fail to compile
    (a non-constexpr global, an unsupported op). Triton compiles to sm_90 machine code without a GPU
    (its wheel bundles ptxas); in a subprocess, because this process decorated the kernels for the
    interpreter."""
    import subprocess
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _COMPILE_FOR_SM90], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-3000:]


@pytest.mark.parametrize("active", [None, [True, False], [False, True]], ids=["all", "second-frozen", "first-frozen"])
def test_fused_step_equals_tvl1_step(active):
    """Both passes together (u from pass 1, p from pass 2, the per-pair error) vs tvl1_step."""
    state, data = _random_problem()
    mask = None if active is None else torch.tensor(active, device=DEVICE)
    ref = T.tvl1_step(*state, *data, mask, L_T, THETA, TAUT)
    ours_in = [s.clone() for s in state]
    ours = TritonKernels(TILES_HW).step(*ours_in, *data, mask, L_T, THETA, TAUT)
    assert all(o is i for o, i in zip(ours[:6], ours_in)), "the step updates its state in place"
    live = slice(None) if active is None else mask
    for name, r, o, before in zip(("u1", "u2", "p11", "p12", "p21", "p22"), ref[:6], ours[:6], state):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
        if active is not None:
            frozen = ~mask
            assert torch.equal(o[frozen], before[frozen]), f"{name} of a frozen pair changed"
            assert not torch.equal(o[live], before[live]), f"{name} of an active pair did not change"
    error = ours[6]
    assert error.shape == (SHAPE_BHW[0],) and error.dtype == torch.float32
    torch.testing.assert_close(error[live], ref[6][live], rtol=1e-5, atol=0)
    if active is not None:
        assert (error[~mask] == 0).all()


def test_dual_pass_alone_equals_forward_gradient_and_dual_update():
    """Pass 2 on a given u (not pass 1's), border rows and columns included."""
    (u1, u2, *ps), _ = _random_problem(seed=1)
    kernels = TritonKernels(TILES_HW)
    b, h, w = u1.shape
    tiles_w, n_tiles, grid = kernels._grid(h, w, b)
    partial = torch.arange(b * n_tiles, dtype=torch.float32, device=DEVICE).reshape(b, n_tiles)
    error = torch.empty(b, device=DEVICE)
    ours = [p.clone() for p in ps]
    K.dual_kernel[grid](
        u1,
        u2,
        *ours,
        partial,
        partial,
        error,
        h,
        w,
        tiles_w,
        n_tiles,
        TAUT,
        HAS_MASK=False,
        BLOCK_H=TILES_HW[0],
        BLOCK_W=TILES_HW[1],
        BLOCK_T=16,
    )
    u1x, u1y = T.forward_gradient(u1)
    u2x, u2y = T.forward_gradient(u2)
    ng1, ng2 = 1 + TAUT * torch.hypot(u1x, u1y), 1 + TAUT * torch.hypot(u2x, u2y)
    ref = [
        (ps[0] + TAUT * u1x) / ng1,
        (ps[1] + TAUT * u1y) / ng1,
        (ps[2] + TAUT * u2x) / ng2,
        (ps[3] + TAUT * u2y) / ng2,
    ]
    for r, o in zip(ref, ours):
        torch.testing.assert_close(o, r, rtol=1e-6, atol=1e-6)
    assert torch.equal(error, partial.sum(dim=1)), "tile 0 adds up the pair's partial sums"


@pytest.mark.parametrize("ksize", [3, 5])
def test_median_equals_median_blur_exactly(ksize):
    g = torch.Generator().manual_seed(3)
    flow = torch.randn(SHAPE_BHW, generator=g) * 3
    flow[:, ::4] = torch.round(flow[:, ::4])  # ties
    ours = TritonKernels(TILES_HW).median(flow.to(DEVICE), ksize).cpu()
    assert torch.equal(ours, T.median_blur(flow, ksize))
    cv2 = pytest.importorskip("cv2")
    for i in range(SHAPE_BHW[0]):
        assert np.array_equal(ours[i].numpy(), cv2.medianBlur(flow[i].numpy(), ksize))


@pytest.mark.parametrize("spread_px", [1.5, 30.0])  # near the identity; far outside the image
def test_warp_equals_warp_linearize(spread_px):
    """The cubic remap of (I1, I1x, I1y) and calcGradRho in one kernel vs the torch code (which is
    tested against cv2.remap in test_flow_backends), taps outside the image included."""
    g = torch.Generator().manual_seed(4)
    b, h, w = SHAPE_BHW
    I1 = torch.rand((b, h, w), generator=g) * 255
    I1x, I1y = T.centered_gradient(I1)
    stack = torch.stack([I1, I1x, I1y], dim=1)
    I0 = torch.rand((b, h, w), generator=g) * 255
    u1, u2 = (torch.randn((b, h, w), generator=g) * spread_px for _ in range(2))
    xs, ys = torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32)[:, None]
    ref = T.warp_linearize(stack, I0, u1, u2, xs, ys)
    ours = TritonKernels(TILES_HW).warp(*(t.to(DEVICE) for t in (stack, I0, u1, u2)))
    for name, r, o in zip(("I1wx", "I1wy", "grad", "rho_c"), ref, ours):
        assert o.is_contiguous()
        torch.testing.assert_close(o.cpu(), r, rtol=1e-5, atol=1e-3, msg=lambda m, name=name: f"{name}: {m}")
    if spread_px > 10:
        assert (ref[3] == -I0).float().mean() > 0.2, "most taps should fall outside the image"


# ---- a full small solve ------------------------------------------------------------------------

SMALL_SOLVE = {
    "nscales": 2,
    "warps": 1,
    "outer_iterations": 2,
    "inner_iterations": 5,
}  # the 2nd level warps by nonzero flow


def _textured_pair(shift_xy, size_hw=(40, 48), seed=0):
    """uint8 (H,W) x2: a smooth random texture and the same texture moved by shift_xy px."""
    rng = np.random.default_rng(seed)
    h, w = size_hw
    noise = torch.from_numpy(rng.uniform(0, 255, (1, 1, h + 16, w + 16)).astype(np.float32))
    kernel = torch.exp(-(torch.arange(-6, 7, dtype=torch.float32) ** 2) / (2 * 2.0**2))
    kernel /= kernel.sum()
    big = torch.nn.functional.conv2d(noise, kernel.view(1, 1, 1, -1), padding=(0, 6))
    big = torch.nn.functional.conv2d(big, kernel.view(1, 1, -1, 1), padding=(6, 0))[0, 0].numpy()
    big = (big - big.min()) / (big.max() - big.min()) * 255
    dx, dy = shift_xy
    prev = big[8 : 8 + h, 8 : 8 + w]
    nxt = big[8 - dy : 8 - dy + h, 8 - dx : 8 - dx + w]
    return prev.round().astype(np.uint8), nxt.round().astype(np.uint8)


def _solve(prev_u8, next_u8, kernels=None):
    """float32 (B,H,W,2) px from the TVL1Solver with SMALL_SOLVE's counts, OpenCV's other defaults."""
    solver = T.TVL1Solver({**OPENCV_TVL1_DEFAULTS, **SMALL_SOLVE}, kernels=kernels)
    with torch.inference_mode():
        u1, u2 = solver(torch.from_numpy(prev_u8).float().to(DEVICE), torch.from_numpy(next_u8).float().to(DEVICE))
    return torch.stack([u1, u2], dim=-1).cpu().numpy()


@pytest.fixture(scope="module")
def small_solve():
    """(prev, next, triton flow of the batch, triton flow of pair 1 alone): a still pair first (it
    converges at its first iteration, so the rest runs with a frozen pair), then two moving pairs."""
    pairs = [_textured_pair((0, 0), seed=1), _textured_pair((2, 1)), _textured_pair((-1, 2), seed=2)]
    prev, nxt = np.stack([p for p, _ in pairs]), np.stack([n for _, n in pairs])
    kernels = TritonKernels((64, 64))  # one tile per image: the interpreter's cost is per program
    return prev, nxt, _solve(prev, nxt, kernels), _solve(prev[1:2], nxt[1:2], kernels)[0]


def test_small_solve_equals_torch_solve(small_solve):
    """Every pair of the batch: the data planes are views of the warp's (B,3,H,W) stack, so a wrong
    batch stride would show on every pair but the first."""
    prev, nxt, ours, _ = small_solve
    ref = _solve(prev, nxt)
    assert np.array_equal(ours[0], np.zeros_like(ours[0])) and np.array_equal(ref[0], ours[0])
    for i in (1, 2):
        assert np.abs(ref[i]).max() > 1.0, f"pair {i} should have moved"
        assert np.abs(ours[i] - ref[i]).max() < 1e-3, (i, np.abs(ours[i] - ref[i]).max())


def test_small_solve_within_the_issue_bounds_of_opencv(small_solve):
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "optflow"):
        pytest.skip("cv2.optflow missing (opencv-contrib)")
    from flowprep.flow.opencv_tvl1 import OpenCVTVL1

    prev, nxt, ours, _ = small_solve
    ref = OpenCVTVL1(**SMALL_SOLVE).compute(prev, nxt)
    for i in (1, 2):
        epe = np.linalg.norm(ours[i] - ref[i], axis=-1).mean()
        assert epe <= 0.05, f"pair {i}: mean EPE triton vs OpenCV = {epe:.4f} px"
        q_ours = fmt.quantize_flow(ours[i]).astype(np.int16)
        q_ref = fmt.quantize_flow(ref[i]).astype(np.int16)
        within = (np.abs(q_ours - q_ref) <= 1).all(axis=-1).mean()
        assert within >= 0.97, f"pair {i}: {within:.2%} of pixels within +-1 level"


def test_pair_alone_equals_the_pair_in_a_batch(small_solve):
    _, _, together, alone = small_solve
    assert np.array_equal(alone, together[1])
