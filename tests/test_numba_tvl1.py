"""The fused CPU TV-L1 (`numba` backend), pass by pass against plain references of OpenCV's steps.

The references below are `tvl1flow.cpp`'s functions written one pass each in float32 numpy (numpy does
no FMA contraction, so every float operation is OpenCV's), with the dual update in the kernels'
documented form (float sqrts, products with reciprocals from one shared division; within 5 ulps of
OpenCV's, tested below).
The fused sweep must equal them bit for bit, and its summed error equal OpenCV's sequential float sum
to float rounding; the median must equal cv2.medianBlur bit for bit; the cubic warp is within float32
rounding of cv2.remap. Real-frame fidelity against OpenCV is in test_flow_backends.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("numba")

from flowprep.flow import _median_networks, create_backend  # noqa: E402
from flowprep.flow import _numba_kernels as K  # noqa: E402
from flowprep.flow.numba_tvl1 import FusedTVL1Solver, NumbaTVL1, _Workspace  # noqa: E402
from flowprep.flow.opencv_tvl1 import OPENCV_TVL1_DEFAULTS, merge_params  # noqa: E402

F = np.float32
L_T, THETA, TAUT = F(0.15 * 0.3), F(0.3), F(0.25 / 0.3)


def _random_state(shape, seed):
    """u1, u2, p11, p12, p21, p22 and I1wx, I1wy, grad, rho_c as a warp leaves them."""
    rng = np.random.default_rng(seed)
    state = [rng.normal(0, 1.5, shape).astype(F) for _ in range(2)] + [
        rng.uniform(-0.9, 0.9, shape).astype(F) for _ in range(4)
    ]
    I1wx, I1wy = (rng.normal(0, 20, shape).astype(F) for _ in range(2))
    I1wx[0, :3] = 0  # flat pixels: the FLT_EPSILON case of the thresholding step
    I1wy[0, :3] = 0
    grad = I1wx * I1wx + I1wy * I1wy
    rho_c = rng.normal(0, 10, shape).astype(F)
    return state, (I1wx, I1wy, grad, rho_c)


# ---- plain references: one OpenCV function, one pass ------------------------------------------


@np.errstate(divide="ignore", invalid="ignore")  # -rho / grad where grad = 0 is computed, never used
def _estimate_v(I1wx, I1wy, u1, u2, grad, rho_c):
    rho = rho_c + (I1wx * u1 + I1wy * u2)
    fi = -rho / grad
    d1 = np.where(
        rho < -L_T * grad,
        L_T * I1wx,
        np.where(rho > L_T * grad, -L_T * I1wx, np.where(grad > np.finfo(F).eps, fi * I1wx, F(0))),
    )
    d2 = np.where(
        rho < -L_T * grad,
        L_T * I1wy,
        np.where(rho > L_T * grad, -L_T * I1wy, np.where(grad > np.finfo(F).eps, fi * I1wy, F(0))),
    )
    return u1 + d1, u2 + d2


def _divergence(v1, v2):
    div = np.empty_like(v1)
    div[1:, 1:] = (v1[1:, 1:] - v1[1:, :-1]) + (v2[1:, 1:] - v2[:-1, 1:])
    div[0, 1:] = v1[0, 1:] - v1[0, :-1] + v2[0, 1:]
    div[1:, 0] = v1[1:, 0] + v2[1:, 0] - v2[:-1, 0]
    div[0, 0] = v1[0, 0] + v2[0, 0]
    return div


def _forward_gradient(u):
    dx, dy = np.zeros_like(u), np.zeros_like(u)
    dx[:, :-1] = u[:, 1:] - u[:, :-1]
    dy[:-1, :] = u[1:, :] - u[:-1, :]
    return dx, dy


def _opencv_dual(pa, pb, ux, uy):
    """estimateDualVariables as OpenCV writes it: a double hypot rounded to float, two divisions."""
    g = np.hypot(ux.astype(np.float64), uy.astype(np.float64)).astype(F)
    ng = F(1) + TAUT * g
    return (pa + TAUT * ux) / ng, (pb + TAUT * uy) / ng


def _kernel_dual(p11, p12, p21, p22, u1x, u1y, u2x, u2y):
    """The same in the kernels' form, both components: float sqrts, products with the reciprocals,
    which come from one division 1 / (ng1 ng2)."""
    ng1 = F(1) + TAUT * np.sqrt(u1x * u1x + u1y * u1y)
    ng2 = F(1) + TAUT * np.sqrt(u2x * u2x + u2y * u2y)
    inv_both = F(1) / (ng1 * ng2)
    inv1, inv2 = inv_both * ng2, inv_both * ng1
    return (p11 + TAUT * u1x) * inv1, (p12 + TAUT * u1y) * inv1, (p21 + TAUT * u2x) * inv2, (p22 + TAUT * u2y) * inv2


def _reference_iteration(state, consts):
    u1, u2, p11, p12, p21, p22 = (a.copy() for a in state)
    I1wx, I1wy, grad, rho_c = consts
    v1, v2 = _estimate_v(I1wx, I1wy, u1, u2, grad, rho_c)
    n1 = v1 + THETA * _divergence(p11, p12)
    n2 = v2 + THETA * _divergence(p21, p22)
    squared = ((n1 - u1) * (n1 - u1) + (n2 - u2) * (n2 - u2)).ravel()
    error = np.cumsum(squared, dtype=F)[-1]  # estimateU: a sequential float sum in row-major order
    return [n1, n2, *_kernel_dual(p11, p12, p21, p22, *_forward_gradient(n1), *_forward_gradient(n2))], error


def _workspace(state, consts):
    """The kernels' padded layout (`numba_tvl1._Workspace`) holding this state."""
    h, w = state[0].shape
    ws = _Workspace(h, w, K)
    for name, a in zip(("u1", "u2", "p11", "p12", "p21", "p22"), state):
        ws.plane(name)[...] = a
    for name, a in zip(("I1wx", "I1wy", "grad", "rho_c"), consts):
        getattr(ws, name)[:, :w] = a
    return ws


@pytest.mark.parametrize("shape", [(3, 3), (7, 9), (16, 21), (5, 8), (6, 15), (5, 16), (4, 32)])  # 16, 32: none
def test_fused_sweep_equals_the_separate_passes_bit_for_bit(shape):
    state, consts = _random_state(shape, seed=shape[1])
    ws = _workspace(state, consts)
    for _ in range(4):  # several iterations: the duals read by the next one must be right too
        state, ref_error = _reference_iteration(state, consts)
        error = K.sweep(*ws.kernel_args(), L_T, THETA, TAUT, ws.err, ws.edges)
        for name, b in zip(("u1", "u2", "p11", "p12", "p21", "p22"), state):
            a = ws.plane(name)
            assert np.array_equal(a, b), f"{name} differs at {np.argwhere(a != b)[:3].tolist()}"
        assert abs(F(error) - ref_error) <= 1e-5 * ref_error  # summed in SIMD lanes, not sequentially


def test_dual_update_is_within_five_ulps_of_opencvs():
    """sqrtf vs a rounded double hypot: 1 ulp; ng1 ng2, its reciprocal, the product with ng2 (or ng1),
    the product with the numerator and OpenCV's division: half an ulp each. Within 5 ulps of the
    result; most are equal."""
    rng = np.random.default_rng(11)
    u = [rng.normal(0, 3, 200_000).astype(F) for _ in range(4)]
    u[0][:1000] *= F(1e-3)  # near-flat flow too, where 1 + tau/theta |grad u| is close to 1
    p = [rng.uniform(-1, 1, 200_000).astype(F) for _ in range(4)]
    refs = [*_opencv_dual(p[0], p[1], u[0], u[1]), *_opencv_dual(p[2], p[3], u[2], u[3])]
    for ours, ref in zip(_kernel_dual(*p, *u), refs):
        ulps = np.abs(ours.view(np.int32).astype(np.int64) - ref.view(np.int32).astype(np.int64))
        assert ulps.max() <= 5 and (ulps == 0).mean() > 0.5, (ulps.max(), (ulps == 0).mean())


def test_inner_loop_stops_where_opencv_stops():
    state, consts = _random_state((12, 14), seed=3)
    errors, ref_state = [], state
    for _ in range(6):
        ref_state, e = _reference_iteration(ref_state, consts)
        errors.append(e)
    threshold = F((errors[2] + errors[3]) / 2) if errors[3] < errors[2] else F(errors[3])
    expected = next(i + 1 for i, e in enumerate(errors) if not e > threshold)
    ws = _workspace(state, consts)
    n, error = K.inner_loop(*ws.kernel_args(), L_T, THETA, TAUT, threshold, 30, ws.err, ws.edges)
    assert n == expected and abs(F(error) - errors[n - 1]) <= 1e-5 * errors[n - 1]
    ws = _workspace(state, consts)
    n, _ = K.inner_loop(*ws.kernel_args(), L_T, THETA, TAUT, F(0), 2, ws.err, ws.edges)
    assert n == 2  # and never more than asked


@pytest.mark.parametrize("ksize", [3, 5])
@pytest.mark.parametrize("shape", [(5, 5), (13, 31), (40, 56)])
def test_median_equals_cv_median_blur(ksize, shape):
    rng = np.random.default_rng(ksize * 100 + shape[0])
    u = rng.normal(0, 3, shape).astype(F)
    u[::3] = np.round(u[::3])  # ties
    r = ksize // 2
    padded = np.empty((shape[0] + 2 * r, shape[1] + 2 * r), F)
    K.pad_replicate(u, r, padded)
    assert np.array_equal(padded, np.pad(u, r, mode="edge"))
    out = np.empty_like(u)
    (K.median5 if ksize == 5 else K.median3)(padded, out)
    assert np.array_equal(out, cv2.medianBlur(u, ksize))


@pytest.mark.parametrize("k, ops", [(3, 26), (5, 146)])
def test_column_sorted_median_network_takes_the_median_of_every_0_1_window(k, ops):
    """By the 0-1 principle, a min/max network that takes the median of every 0-1 window with sorted
    columns takes it of every real one; the pruning must not have lost a needed comparator."""
    import itertools

    network = _median_networks.column_sorted_median_network(k)
    assert sum(int(a) + int(b) for _, _, a, b in network) == ops
    n = k * k
    for zeros in itertools.product(range(k + 1), repeat=k):
        values = [int(i >= z) for z in zeros for i in range(k)]  # column j, row i at j*k + i; sorted columns
        for lo, hi, _, _ in network:
            values[lo], values[hi] = min(values[lo], values[hi]), max(values[lo], values[hi])
        assert values[n // 2] == int(n - sum(zeros) > n // 2), zeros  # 1 iff ones are the majority


@pytest.mark.parametrize("shape", [(6, 1), (4, 2), (7, 513), (5, 1030)])
def test_paired_median5_equals_cv_median_blur_at_odd_widths_and_across_chunks(shape):
    """median5 takes pixels two by two in chunks of _CHUNK pairs: an odd last pixel, a row of one or
    two pixels and rows of several chunks (the last one partial) must give cv2.medianBlur's bits."""
    rng = np.random.default_rng(shape[1])
    u = rng.normal(0, 3, shape).astype(F)
    u[:, ::4] = np.round(u[:, ::4])  # ties
    padded = np.empty((shape[0] + 4, shape[1] + 4), F)
    K.pad_replicate(u, 2, padded)
    out = np.empty_like(u)
    K.median5(padded, out)
    assert np.array_equal(out, cv2.medianBlur(u, 5))


def test_pair_network_takes_ranks_8_to_13_of_every_0_1_input():
    """The network median5 runs once per pair of pixels: on 4 sorted columns of 5 it must leave ranks
    8..13 on wires 7..12 (0-1 principle, as above); the merge with each pixel's fifth column then takes
    the 13th of 25, checked here on every 0-1 window too."""
    import itertools

    network = _median_networks.pair_network()
    assert sum(int(a) + int(b) for _, _, a, b in network) == 108
    for zeros in itertools.product(range(6), repeat=4):
        values = [int(i >= z) for i in range(5) for z in zeros]  # row i of column j at 4i + j; sorted columns
        for lo, hi, _, _ in network:
            values[lo], values[hi] = min(values[lo], values[hi]), max(values[lo], values[hi])
        assert values[7:13] == sorted([int(i >= z) for z in zeros for i in range(5)])[7:13], zeros
        for own in range(6):  # the pixel's own column: `own` zeros, then ones
            b = [int(i >= own) for i in range(5)]
            median = min([max(values[7 + r], b[4 - r]) for r in range(5)] + [values[12]])
            assert median == int(20 - sum(zeros) + 5 - own > 12), (zeros, own)


def test_median_network_module_is_what_its_generator_writes():
    assert _median_networks.render() == Path(_median_networks.__file__).read_text(), (
        "regenerate: python -m flowprep.flow._median_networks"
    )


def test_centered_gradient_follows_opencv_border_rule():
    rng = np.random.default_rng(5)
    img = (rng.random((9, 11)) * 255).astype(F)
    dx, dy = np.empty_like(img), np.empty_like(img)
    K.centered_gradient(img, dx, dy)
    padded = np.pad(img, 1, mode="edge")  # the border differences are half one-sided ones
    assert np.array_equal(dx, F(0.5) * (padded[1:-1, 2:] - padded[1:-1, :-2]))
    assert np.array_equal(dy, F(0.5) * (padded[2:, 1:-1] - padded[:-2, 1:-1]))


@pytest.mark.parametrize("spread_px", [1.5, 30.0])  # near the identity; far outside the image
def test_warp_matches_cv_remap_and_calc_grad_rho(spread_px):
    rng = np.random.default_rng(7)
    h, w = 40, 52
    I0, I1, I1x, I1y = ((rng.random((h, w)) * 255).astype(F) for _ in range(4))
    u1, u2 = (rng.normal(0, spread_px, (h, w)).astype(F) for _ in range(2))
    out = [np.empty((h, w), F) for _ in range(4)]
    K.warp(I0, I1, I1x, I1y, u1, u2, *out, np.zeros(K.SCRATCH_FLOATS, F))
    I1wx, I1wy, grad, rho_c = out
    map_x = np.arange(w, dtype=F)[None, :] + u1
    map_y = np.arange(h, dtype=F)[:, None] + u2
    ref = {name: cv2.remap(img, map_x, map_y, cv2.INTER_CUBIC) for name, img in (("I1", I1), ("x", I1x), ("y", I1y))}
    # OpenCV 5's SIMD remap rounds differently (fused multiply-adds): a few float32 ulps of 255
    assert np.abs(I1wx - ref["x"]).max() < 1e-3 and np.abs(I1wy - ref["y"]).max() < 1e-3
    assert np.array_equal(grad, I1wx * I1wx + I1wy * I1wy)
    I1w = rho_c + I1wx * u1 + I1wy * u2 + I0  # invert calcGradRho: the warped I1, to rounding
    assert np.abs(I1w - ref["I1"]).max() < 1e-2


@pytest.mark.parametrize("flow", ["smooth", "steps", "noisy", "left_and_up", "far", "wide"])
def test_warp_runs_equal_the_per_pixel_path_bit_for_bit(flow):
    """`warp` computes runs of pixels whose displacements span <= 1 px as one 5x5-window SIMD loop;
    it must give exactly what the per-pixel path gives: smooth flow (whole-row runs, both tap shifts),
    integer steps (runs that end), noise (runs too short: per-pixel), flow out through the left and top
    border (runs trimmed there), flow far outside, and a row wider than the warp's chunk (runs end at
    chunk borders). The planes are wider than the image, as in the solver."""
    rng = np.random.default_rng(5)
    h, w, wp = (9, 1100, 1104) if flow == "wide" else (37, 150, 152)
    I0, I1, I1x, I1y = ((rng.random((h, w)) * 255).astype(F) for _ in range(4))
    yy, xx = np.mgrid[0:h, 0:w].astype(F)
    u1, u2 = {
        "smooth": (F(0.7) * np.sin(xx / 17) + F(0.2), F(0.6) * np.cos(yy / 9) - F(0.3)),
        "steps": (np.floor(xx / 23) * F(0.9) - F(1.5), np.floor(yy / 11) * F(0.7)),
        "noisy": (rng.normal(0, 2, (h, w)).astype(F), rng.normal(0, 2, (h, w)).astype(F)),
        "left_and_up": (np.full((h, w), -2.6, F), np.full((h, w), -1.4, F)),
        "far": (np.full((h, w), 40.0, F) + xx / 10, np.full((h, w), -3.2, F)),
        "wide": (F(0.7) * np.sin(xx / 17) + F(0.2), F(0.4) * np.cos(yy / 3)),
    }[flow]
    padded = [np.zeros((h, wp), F) for _ in range(6)]
    padded[0][:, :w], padded[1][:, :w] = u1, u2
    ours, ref = [p.copy() for p in padded[2:]], [p.copy() for p in padded[2:]]
    K.warp(I0, I1, I1x, I1y, padded[0], padded[1], *ours, np.zeros(K.SCRATCH_FLOATS, F))
    K.warp_per_pixel(I0, I1, I1x, I1y, padded[0], padded[1], *ref)
    for name, a, b in zip(("I1wx", "I1wy", "grad", "rho_c"), ours, ref):
        assert np.array_equal(a, b), f"{name} differs at {np.argwhere(a != b)[:3].tolist()}"
        assert not a[:, w:].any()  # the pad columns are not written


def _pair(seed, shape=(48, 64), shift=(2, 1)):
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (shape[0] + 16, shape[1] + 16)).astype(F), (0, 0), 2.0)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX)
    dx, dy = shift
    prev = big[8 : 8 + shape[0], 8 : 8 + shape[1]]
    nxt = big[8 - dy : 8 - dy + shape[0], 8 - dx : 8 - dx + shape[1]]
    return prev.round().astype(np.uint8), nxt.round().astype(np.uint8)


def test_pair_alone_equals_pair_in_a_batch_run_after_run():
    pairs = [_pair(1), _pair(2, shift=(-3, 2)), _pair(3, shift=(0, 0))]
    prev, nxt = np.stack([p for p, _ in pairs]), np.stack([n for _, n in pairs])
    backend = create_backend("numba")
    together = backend.compute(prev, nxt)
    again = create_backend("numba").compute(prev, nxt)
    assert np.array_equal(together, again)
    for i in range(3):
        assert np.array_equal(backend.compute(prev[i : i + 1], nxt[i : i + 1])[0], together[i])
    assert np.allclose(np.median(together[0, 12:-12, 12:-12], axis=(0, 1)), [2, 1], atol=0.15)


def test_flow_is_the_same_at_every_simd_width(tmp_path):
    """numba compiles for the CPU it runs on and LLVM picks the vector width; the flow must not depend
    on it. A subprocess compiles the kernels for a narrower target (AVX2 where this CPU has AVX-512,
    else SSE2) into its own cache and must give these very bits."""
    import os
    import subprocess
    import sys

    import llvmlite.binding as llvm

    if not llvm.get_process_triple().startswith("x86_64"):
        pytest.skip("the narrower target named here is an x86 one")
    narrow = "haswell" if llvm.get_host_cpu_features().get("avx512f") else "x86-64"
    pairs = [_pair(1), _pair(2, shift=(-3, 2)), _pair(5, shape=(35, 70), shift=(1, -2))]
    np.savez(tmp_path / "pairs.npz", *[a for pair in pairs for a in pair])
    script = (
        "import sys, numpy as np\n"
        "from flowprep.flow import create_backend\n"
        "arrays = np.load(sys.argv[1])\n"
        "frames = [arrays[f'arr_{i}'] for i in range(len(arrays.files))]\n"
        "backend = create_backend('numba')\n"
        "np.savez(sys.argv[2], *[backend.compute(frames[i][None], frames[i + 1][None])[0]\n"
        "                        for i in range(0, len(frames), 2)])\n"
    )
    env = {**os.environ, "NUMBA_CPU_NAME": narrow, "NUMBA_CPU_FEATURES": "", "NUMBA_CACHE_DIR": str(tmp_path)}
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "pairs.npz"), str(tmp_path / "narrow.npz")], env=env, check=True
    )
    narrow_flows = np.load(tmp_path / "narrow.npz")
    backend = create_backend("numba")
    for i, (prev, nxt) in enumerate(pairs):
        assert np.array_equal(backend.compute(prev[None], nxt[None])[0], narrow_flows[f"arr_{i}"]), i


def test_pairs_on_threads_equal_pairs_on_one_thread():
    """The task's CPU share (cv2.setNumThreads) solves a call's pairs on that many threads; the flow is
    the same bits, and the backend really used several threads."""
    import threading

    pairs = [_pair(s, shift=(s % 3 - 1, 1)) for s in range(5)]
    prev, nxt = np.stack([p for p, _ in pairs]), np.stack([n for _, n in pairs])
    backend, before = create_backend("numba"), cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        one = backend.compute(prev, nxt)
        cv2.setNumThreads(3)
        threaded = backend.compute(prev, nxt)
        names = {t.name for t in threading.enumerate() if t.name.startswith("numba-tvl1")}
    finally:
        cv2.setNumThreads(before)
    assert np.array_equal(one, threaded)
    assert len(backend._solvers) == 3 and len(names) >= 2, names


def compiled_and_python_levels(prev, nxt, **overrides):
    """The flow and counters of one pair, each pyramid level one compiled call, then driven from Python."""
    params = merge_params(OPENCV_TVL1_DEFAULTS, overrides)
    results = []
    for compiled in (True, False):
        solver = FusedTVL1Solver(params, compiled_levels=compiled)
        flow = solver(prev.astype(F), nxt.astype(F))
        results.append((flow, solver.iterations_run, solver.pixel_steps))
    return results


@pytest.mark.parametrize(
    "seed, shape, overrides",
    [
        (1, (48, 64), {}),
        (2, (35, 70), {"median_filtering": 3}),
        (3, (20, 17), {"median_filtering": 0, "warps": 3}),
        (4, (64, 48), {"outer_iterations": 2, "epsilon": 0.05}),  # the stopping tests end levels early
    ],
)
def test_compiled_level_equals_the_python_driven_level_bit_for_bit(seed, shape, overrides):
    prev, nxt = _pair(seed, shape=shape, shift=(seed % 3 - 1, 2))
    (compiled, iters, steps), (python, py_iters, py_steps) = compiled_and_python_levels(prev, nxt, **overrides)
    assert np.array_equal(compiled, python), np.abs(compiled - python).max()
    assert (iters, steps) == (py_iters, py_steps) and iters > 0


def test_median_3_and_no_median_run_and_differ():
    prev, nxt = _pair(4)
    flows = {
        m: create_backend("numba", median_filtering=m, nscales=2).compute(prev[None], nxt[None])[0] for m in (0, 3, 5)
    }
    assert not np.array_equal(flows[0], flows[5]) and not np.array_equal(flows[3], flows[5])


def test_rejects_what_it_does_not_implement():
    with pytest.raises(ValueError, match="gamma"):
        NumbaTVL1(gamma=0.5)
    with pytest.raises(ValueError, match="initial flow"):
        NumbaTVL1(use_initial_flow=True)
    with pytest.raises(ValueError, match="median_filtering"):
        NumbaTVL1(median_filtering=7)
    backend = NumbaTVL1()
    with pytest.raises(ValueError, match="one shape"):
        backend.compute(np.zeros((1, 8, 8), np.uint8), np.zeros((1, 8, 9), np.uint8))
    assert backend.compute(np.zeros((0, 8, 8), np.uint8), np.zeros((0, 8, 8), np.uint8)).shape == (0, 8, 8, 2)
    assert "numba" in backend.params()["impl"]
