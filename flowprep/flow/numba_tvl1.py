"""Fused CPU TV-L1: OpenCV's `tvl1flow.cpp` step by step, each inner iteration two vectorized passes.

OpenCV runs an inner iteration as ten functions (estimateV, divergence x2, estimateU, forwardGradient
x2, estimateDualVariables), each a full pass writing a temporary image: ~30 passes through memory.
Here (`_numba_kernels.sweep`) one iteration is two passes that update the state in place, each one
SIMD loop over the whole level: estimateV + divergence + estimateU fused into the flow update, then
forwardGradient + estimateDualVariables fused into the dual update. The warp (buildFlowMap + three
cubic remaps + calcGradRho) is one pass too, and the median filter is an unrolled sorting network,
SIMD-vectorized by LLVM.

Same flow as OpenCV's, by construction: the iteration's float operations are OpenCV's, in its order
and precision (float32, no FMA, no reassociation), with documented deviations of a float32 rounding
or two each (`_numba_kernels._dual_update`, `_plane_sum`): |grad u| as a float sqrt, the divisions by
1 + tau/theta |grad u| of both components as products with reciprocals taken by one division, and the
stopping error summed down the columns first (the same at every SIMD width).
Each pyramid level is one compiled call (`_numba_level.solve_level`); the pyramid and the flow zoom
call cv::resize itself; the median is exact. The cubic remap differs from
OpenCV 5's (whose SIMD build fuses multiply-adds) by a few float32 ulps. docs/flow_backends.md has the
measured agreement; tests/test_numba_tvl1.py and test_flow_backends.py assert it.

One pair per thread: a batch's pairs are solved one by one, on as many threads as the task's CPU share
(`NumbaTVL1._threads`), each with its own solver, so a pair's flow never depends on its batch or thread.
"""

from __future__ import annotations

import numpy as np

from flowprep.flow.base import FlowBackend, importable
from flowprep.flow.opencv_tvl1 import OPENCV_TVL1_DEFAULTS, merge_params

_MIN_SCALE_SIDE = 16  # calc() stops building the pyramid below 16 px (either side)


_LINE = 64  # bytes: one cache line, one AVX-512 vector


def _aligned_zeros(n: int, k: int) -> np.ndarray:
    """n zero float32s from a cache line's start plus k lines (plane k of a workspace). numpy
    aligns to 16 bytes only, and a SIMD loop over unaligned planes splits every vector load across two
    lines: the iteration ran 8% slower (19.8 -> 18.3 ms a 256x256 pair). The stagger keeps the planes
    that one loop reads at the same index off the same L1 sets (large arrays allocated one after
    another start at nearly the same offset in their pages)."""
    floats = _LINE // 4
    buf = np.zeros(n + floats * (k + 1), np.float32)
    start = (-buf.ctypes.data % _LINE) // 4 + floats * k
    return buf[start : start + n]


class _Workspace:
    """The float32 planes of one pyramid level, allocated once per level size and reused.

    The iteration's planes are (H, Wp): rows padded to whole SIMD vectors (`_numba_kernels`, above
    `state_views`), each plane starting on a cache line. The flow and the dual variables live in
    buffers of (H+2)*Wp floats; `u1`, `u2` are the flow's (H,W) views, `u1_full`, `u2_full` its (H,Wp) plane."""

    def __init__(self, h: int, w: int, kernels):
        self.w = w
        wp = -(-w // kernels.LANES) * kernels.LANES  # no pad column at W = 256: 6% less work
        for k, name in enumerate(("I1wx", "I1wy", "grad", "rho_c", "err")):
            setattr(self, name, _aligned_zeros(h * wp, k).reshape(h, wp))
        for name in ("I1x", "I1y"):
            setattr(self, name, np.empty((h, w), np.float32))
        self.state = {
            name: _aligned_zeros((h + 2) * wp, 5 + k) for k, name in enumerate(("u1", "u2", "p11", "p12", "p21", "p22"))
        }
        self.u1_full, self.u2_full = self.plane("u1", full=True), self.plane("u2", full=True)
        self.u1, self.u2 = self.plane("u1"), self.plane("u2")
        self.edges = np.zeros((6, h), np.float32)  # `_numba_kernels.sweep`'s scratch
        self.framed = np.zeros((3, h + 2 * kernels.PAD, w + 2 * kernels.PAD), np.float32)  # I1, I1x, I1y for the warp
        self.warp_scratch = _aligned_zeros(kernels.SCRATCH_FLOATS, 11)
        self.padded = {}  # median radius -> (H+2r, W+2r) buffer

    def start_level(self) -> None:
        """procOneScale's start: the dual variables 0. The flow's pads are zeroed too: no real pixel
        reads them, but left alone they would drift from pair to pair."""
        wp = self.I1wx.shape[1]
        for name in ("p11", "p12", "p21", "p22"):
            self.state[name].fill(0)
        for name in ("u1", "u2"):
            self.state[name][:wp] = 0
            self.state[name][-wp:] = 0
            self.plane(name, full=True)[:, self.w :] = 0

    def kernel_args(self) -> tuple:
        """The arguments `_numba_kernels.sweep` / `inner_loop` start with: w, the state, the warp's planes."""
        return (
            self.w,
            *(self.state[n] for n in ("u1", "u2", "p11", "p12", "p21", "p22")),
            self.I1wx,
            self.I1wy,
            self.grad,
            self.rho_c,
        )

    def plane(self, name: str, full: bool = False) -> np.ndarray:
        """A state buffer's plane as an (H,W) view, or (H,Wp) with the pad columns."""
        h, wp = self.I1wx.shape
        plane = self.state[name][wp:-wp].reshape(h, wp)
        return plane if full else plane[:, : self.w]

    def padded_for(self, radius: int) -> np.ndarray:
        if radius not in self.padded:
            h, w = self.I1x.shape
            self.padded[radius] = np.empty((h + 2 * radius, w + 2 * radius), np.float32)
        return self.padded[radius]


class FusedTVL1Solver:
    """`__call__(I0, I1)`: float32 (H,W) frames 0..255 -> flow_xy float32 (H,W,2) px, OpenCV's calc().

    `iterations_run` / `pixel_steps` count the inner iterations of the last call (benchmarks).
    compiled_levels: each pyramid level is one call of `_numba_level.solve_level` (default); False
    drives the level's loop from Python, kernel by kernel (`_one_scale_py`, the plain reference: the
    same kernels in the same order, the same flow bit for bit, tested)."""

    def __init__(self, params: dict, compiled_levels: bool = True):
        if params["gamma"] != 0:
            raise ValueError(f"fused TV-L1 implements gamma = 0 only (OpenCV's default); got gamma={params['gamma']!r}")
        if params["use_initial_flow"]:
            raise ValueError("fused TV-L1 does not take an initial flow (use_initial_flow=False)")
        if params["median_filtering"] not in (0, 1, 3, 5):
            raise ValueError(
                "median_filtering must be 0/1 (off), 3 or 5, as OpenCV allows on float flow; "
                f"got {params['median_filtering']!r}"
            )
        from flowprep.flow import _numba_kernels, _numba_level

        self.k = _numba_kernels
        self.solve_level = _numba_level.solve_level
        self.p = params
        self._workspaces: dict[tuple[int, int], _Workspace] = {}
        self.iterations_run = 0
        self.pixel_steps = 0
        self._one_scale = self._one_scale_compiled if compiled_levels else self._one_scale_py
        # compiles once per machine (~20 s), then loads from the cache (~0.4 s): the driver of a job
        # compiles, the workers on its machine load. A compiled level holds the kernels it calls.
        if compiled_levels:
            tiny = np.zeros((_MIN_SCALE_SIDE, _MIN_SCALE_SIDE), np.float32)
            self._one_scale(tiny, tiny, _Workspace(*tiny.shape, self.k))
        else:
            _numba_kernels.warm_up()

    def _workspace(self, h: int, w: int) -> _Workspace:
        if (h, w) not in self._workspaces:
            self._workspaces[(h, w)] = _Workspace(h, w, self.k)
        return self._workspaces[(h, w)]

    def __call__(self, I0: np.ndarray, I1: np.ndarray) -> np.ndarray:
        import cv2

        p = self.p
        step = float(p["scale_step"])
        I0s, I1s = [I0], [I1]
        for _ in range(1, int(p["nscales"])):
            down0 = cv2.resize(I0s[-1], None, fx=step, fy=step, interpolation=cv2.INTER_LINEAR)
            if down0.shape[0] < _MIN_SCALE_SIDE or down0.shape[1] < _MIN_SCALE_SIDE:
                break
            I0s.append(down0)
            I1s.append(cv2.resize(I1s[-1], None, fx=step, fy=step, interpolation=cv2.INTER_LINEAR))

        self.iterations_run = self.pixel_steps = 0
        coarsest = self._workspace(*I0s[-1].shape)
        coarsest.u1.fill(0)
        coarsest.u2.fill(0)
        zoom = np.float32(1.0 / step)  # multiply(u, Scalar(1 / scaleStep)) on a float image
        for s in range(len(I0s) - 1, -1, -1):
            ws = self._workspace(*I0s[s].shape)
            self._one_scale(I0s[s], I1s[s], ws)
            if s == 0:
                return np.stack([ws.u1, ws.u2], axis=-1)
            finer = self._workspace(*I0s[s - 1].shape)
            for coarse_u, fine_u in ((ws.u1, finer.u1), (ws.u2, finer.u2)):
                np.multiply(cv2.resize(coarse_u, fine_u.shape[::-1], interpolation=cv2.INTER_LINEAR), zoom, out=fine_u)

    def _scalars(self, h: int, w: int) -> tuple:
        """procOneScale's scalars, exactly as OpenCV rounds them to float: (scaled_epsilon, l_t, taut, theta)."""
        p = self.p
        return (
            np.float32(p["epsilon"] * p["epsilon"] * h * w),
            np.float32(p["lambda"] * p["theta"]),
            np.float32(p["tau"] / p["theta"]),
            np.float32(p["theta"]),
        )

    def _one_scale_compiled(self, I0: np.ndarray, I1: np.ndarray, ws: _Workspace) -> None:
        """procOneScale in one call of `_numba_level.solve_level`, updating the flow ws.u1, ws.u2 in place."""
        p = self.p
        h, w = I0.shape
        scaled_epsilon, l_t, taut, theta = self._scalars(h, w)
        median = int(p["median_filtering"])
        n = self.solve_level(
            I0,
            I1,
            *ws.kernel_args(),
            ws.I1x,
            ws.I1y,
            ws.framed,
            ws.err,
            ws.edges,
            ws.warp_scratch,
            ws.padded_for(max(median // 2, 1)),  # any 2-D buffer where there is no median
            l_t,
            theta,
            taut,
            scaled_epsilon,
            int(p["warps"]),
            int(p["outer_iterations"]),
            int(p["inner_iterations"]),
            median,
        )
        self.iterations_run += n
        self.pixel_steps += n * h * w

    def _one_scale_py(self, I0: np.ndarray, I1: np.ndarray, ws: _Workspace) -> None:
        """procOneScale driven from Python, kernel by kernel, updating the flow ws.u1, ws.u2 in place: the
        reference `_one_scale_compiled` equals bit for bit."""
        k, p = self.k, self.p
        h, w = I0.shape
        scaled_epsilon, l_t, taut, theta = self._scalars(h, w)
        median = int(p["median_filtering"])
        inner, outer = int(p["inner_iterations"]), int(p["outer_iterations"])

        k.centered_gradient(I1, ws.I1x, ws.I1y)
        k.pad_images(I1, ws.I1x, ws.I1y, ws.framed)
        ws.start_level()
        for _ in range(int(p["warps"])):
            k.warp_framed(I0, ws.framed, ws.u1_full, ws.u2_full, ws.I1wx, ws.I1wy, ws.grad, ws.rho_c, ws.warp_scratch)
            error = np.float32(np.finfo(np.float32).max)
            n_outer = 0
            while n_outer < outer and error > scaled_epsilon:
                if median > 1:
                    self._median(ws.u1_full, median, ws)
                    self._median(ws.u2_full, median, ws)
                n, error = k.inner_loop(*ws.kernel_args(), l_t, theta, taut, scaled_epsilon, inner, ws.err, ws.edges)
                self.iterations_run += n
                self.pixel_steps += n * h * w
                n_outer += 1

    def _median(self, u_full: np.ndarray, ksize: int, ws: _Workspace) -> None:
        """cv::medianBlur(u, u, ksize), in place on the flow's (H,Wp) plane (its pad columns untouched)."""
        radius = ksize // 2
        padded = ws.padded_for(radius)
        self.k.pad_replicate(u_full, radius, padded)
        (self.k.median5 if ksize == 5 else self.k.median3)(padded, u_full)  # reads the copy, writes u


class NumbaTVL1(FlowBackend):
    """The fused CPU TV-L1 backend: OpenCV's algorithm, parameters and flow, ~17-21x its speed per core."""

    name = "numba"
    preferred_batch = 4  # pairs are solved one by one; a few per call keeps the core's window small

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return importable("numba", "pip install numba")

    def __init__(self, **overrides):
        self._params = merge_params(OPENCV_TVL1_DEFAULTS, overrides)
        self._solver = FusedTVL1Solver(self._params)
        self._solvers = [self._solver]  # one per thread: a solver's workspaces are its own
        # pairs per call: at least one per thread the task was given (the core sends windows this long)
        self.preferred_batch = max(NumbaTVL1.preferred_batch, self._threads())
        self._pool, self._pool_size = None, 0  # a ThreadPoolExecutor, started on the first threaded call

    def params(self) -> dict:
        import numba

        from flowprep import __version__

        return {**self._params, "impl": f"flowprep fused TV-L1 {__version__} (numba {numba.__version__}, cpu)"}

    def compute(self, prev_u8: np.ndarray, next_u8: np.ndarray) -> np.ndarray:
        """uint8 (B,H,W) x2 -> flow_xy float32 (B,H,W,2) px, frame t -> t+1."""
        prev_u8, next_u8 = np.asarray(prev_u8), np.asarray(next_u8)
        if prev_u8.shape != next_u8.shape or prev_u8.ndim != 3:
            raise ValueError(f"expected two uint8 (B,H,W) arrays of one shape, got {prev_u8.shape} and {next_u8.shape}")
        if min(prev_u8.shape[1:], default=0) < 3 and prev_u8.shape[0]:
            raise ValueError(f"frames must be at least 3x3 px for TV-L1's gradients, got {prev_u8.shape[1:]}")
        flows = np.empty(prev_u8.shape + (2,), np.float32)
        threads = min(self._threads(), prev_u8.shape[0])
        if threads <= 1:
            for b in range(prev_u8.shape[0]):
                flows[b] = self._solver(prev_u8[b].astype(np.float32), next_u8[b].astype(np.float32))
            return flows
        import queue
        from concurrent.futures import ThreadPoolExecutor

        while len(self._solvers) < threads:
            self._solvers.append(FusedTVL1Solver(self._params))
        if self._pool is None or self._pool_size < threads:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool, self._pool_size = ThreadPoolExecutor(threads, thread_name_prefix="numba-tvl1"), threads
        free: queue.SimpleQueue = queue.SimpleQueue()  # each solver on one thread at a time
        for solver in self._solvers[:threads]:
            free.put(solver)

        def solve(b: int) -> None:
            solver = free.get()
            try:
                flows[b] = solver(prev_u8[b].astype(np.float32), next_u8[b].astype(np.float32))
            finally:
                free.put(solver)

        for done in [self._pool.submit(solve, b) for b in range(prev_u8.shape[0])]:
            done.result()
        return flows

    @staticmethod
    def _threads() -> int:
        """The task's CPU share, as the executors give it to OpenCV (cv2.setNumThreads): the pairs of a
        call are solved that many at a time. The kernels release the GIL, so threads scale; a pair's
        flow is the same on any thread (each has its own solver), so only the speed changes. A worker
        has one thread (`--threads-per-worker` gives it more), and the last jobs of a run get the idle
        workers' share: one long video alone, split over the workers, uses every core."""
        import cv2

        return max(1, cv2.getNumThreads())
