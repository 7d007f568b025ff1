"""Flow backends: the registry contract for every backend, and the torch TV-L1's fidelity to OpenCV.

The fidelity tests (issue 4, item 5) run the torch backend on the CPU at 256x256 on real frames:
Middlebury RubberWhale and Sintel alley_1 (with ground truth) and two consecutive frames of a real
Kinetics clip, against OpenCV's CPU TV-L1 at its defaults.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from flowprep import format as fmt
from flowprep.flow import AUTO_ORDER, BACKENDS, backend_class, create_backend, resolve_backend_name
from flowprep.flow.opencv_tvl1 import OPENCV_TVL1_DEFAULTS
from tests.conftest import shared_path

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")
from flowprep.flow import torch_tvl1 as T  # noqa: E402

SIZE = 256  # the extraction size the fidelity targets are stated for


def _textured_pair(shift_xy=(2, 1), size_hw=(64, 80), seed=0):
    """uint8 (H,W) x2: a smooth random texture and the same texture moved by shift_xy px."""
    rng = np.random.default_rng(seed)
    h, w = size_hw
    big = cv2.GaussianBlur(rng.uniform(0, 255, (h + 16, w + 16)).astype(np.float32), (0, 0), 2.0)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX)
    dx, dy = shift_xy
    prev = big[8 : 8 + h, 8 : 8 + w]
    nxt = big[8 - dy : 8 - dy + h, 8 - dx : 8 - dx + w]  # content moves by +shift: next(x) = prev(x - shift)
    return prev.round().astype(np.uint8), nxt.round().astype(np.uint8)


# ---- the registry contract, for every backend --------------------------------------------------


@pytest.mark.parametrize("name", list(BACKENDS))
def test_available_answers_without_raising(name):
    ok, reason = backend_class(name).available()
    assert isinstance(ok, bool) and isinstance(reason, str)
    assert ok or reason, "an unavailable backend must say why"


def skip_unless_available(name: str) -> None:
    ok, reason = backend_class(name).available()
    if not ok:
        pytest.skip(f"{name} not available here: {reason}")


@pytest.mark.parametrize("name", list(BACKENDS))
def test_backend_contract_and_translation(name):
    skip_unless_available(name)
    backend = create_backend(name)
    prev, nxt = _textured_pair((2, 1))
    batch = 2
    flow = backend.compute(np.stack([prev] * batch), np.stack([nxt] * batch))
    assert flow.shape == (batch, 64, 80, 2) and flow.dtype == np.float32
    interior = flow[:, 12:-12, 12:-12]
    assert np.allclose(np.median(interior, axis=(1, 2)), [2.0, 1.0], atol=0.15), np.median(interior, axis=(1, 2))


@pytest.mark.parametrize("name", list(BACKENDS))
def test_params_name_every_parameter(name):
    skip_unless_available(name)
    params = create_backend(name, warps=3).params()
    assert set(OPENCV_TVL1_DEFAULTS) <= set(params), set(OPENCV_TVL1_DEFAULTS) - set(params)
    assert params["warps"] == 3 and "impl" in params
    json.dumps(params)  # recorded in every sample's metadata
    with pytest.raises(ValueError, match="unknown TV-L1 parameter"):
        backend_class(name)(no_such_param=1)


def test_explicit_unavailable_backend_is_an_error(monkeypatch):
    cls = backend_class("opencv")
    monkeypatch.setattr(cls, "available", classmethod(lambda c: (False, "switched off for the test")))
    with pytest.raises(RuntimeError, match="'opencv' was requested but is not available: switched off"):
        create_backend("opencv")


@pytest.mark.parametrize("name", list(BACKENDS))
def test_each_unavailable_backend_raises_when_asked_for(name):
    ok, reason = backend_class(name).available()
    if ok:
        assert resolve_backend_name(name) == name
    else:
        with pytest.raises(RuntimeError, match=f"{name!r} was requested but is not available") as info:
            resolve_backend_name(name)
        assert reason in str(info.value)


def test_auto_picks_the_first_available_of_auto_order():
    chosen = resolve_backend_name("auto")
    assert chosen in AUTO_ORDER and backend_class(chosen).available()[0]
    first = next(n for n in AUTO_ORDER if backend_class(n).available()[0])
    assert chosen == first


def test_auto_on_a_cpu_machine_is_the_fused_cpu_backend():
    """On a CPU, auto takes the fused numba TV-L1 (OpenCV's flow, faster), never torch (slower)."""
    if any(backend_class(n).available()[0] for n in ("triton-cuda", "torch-cuda", "opencv-cuda")):
        pytest.skip("this machine has a CUDA backend")
    assert resolve_backend_name("auto") == "numba"
    assert AUTO_ORDER.index("numba") < AUTO_ORDER.index("opencv") and "torch" not in AUTO_ORDER


def test_unknown_backend_lists_the_names():
    with pytest.raises(ValueError, match="choose one of: auto, opencv, torch"):
        backend_class("nope")


# ---- torch TV-L1: building blocks against the OpenCV functions they mirror ---------------------


def test_pyramid_and_flow_zoom_match_cv_resize():
    rng = np.random.default_rng(1)
    img = (rng.random((256, 200)) * 255).astype(np.float32)
    ours = T.pyramid_down(torch.from_numpy(img)[None], 0.8)[0].numpy()
    ref = cv2.resize(img, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    assert ours.shape == ref.shape == (205, 160)
    assert np.abs(ours - ref).max() < 1e-3
    small = (rng.random((105, 84)) * 4 - 2).astype(np.float32)
    ours = T.resize_to(torch.from_numpy(small)[None], (131, 105))[0].numpy()
    assert np.abs(ours - cv2.resize(small, (105, 131), interpolation=cv2.INTER_LINEAR)).max() < 1e-4


@pytest.mark.parametrize("spread_px", [1.5, 30.0])  # near the identity; far outside the image
def test_remap_cubic_matches_cv_remap(spread_px):
    rng = np.random.default_rng(2)
    img = (rng.random((64, 80)) * 255).astype(np.float32)
    map_x = (np.arange(80)[None, :] + rng.normal(0, spread_px, (64, 80))).astype(np.float32)
    map_y = (np.arange(64)[:, None] + rng.normal(0, spread_px, (64, 80))).astype(np.float32)
    ref = cv2.remap(img, map_x, map_y, cv2.INTER_CUBIC)
    if int(cv2.__version__.split(".")[0]) < 5:  # OpenCV 4 rounds positions to 1/32 px
        grid = 32
    else:
        grid = None
    ours = T.remap_cubic(
        torch.from_numpy(img)[None, None],
        torch.from_numpy(map_x)[None],
        torch.from_numpy(map_y)[None],
        subpixel_grid=grid,
    )[0, 0].numpy()
    assert np.abs(ours - ref).max() < 1e-2


@pytest.mark.parametrize("ksize", [3, 5])
def test_median_blur_matches_cv_median_blur(ksize):
    rng = np.random.default_rng(3)
    flow = (rng.normal(0, 3, (2, 40, 56))).astype(np.float32)
    flow[:, ::4] = np.round(flow[:, ::4])  # ties
    ours = T.median_blur(torch.from_numpy(flow), ksize).numpy()
    for i in range(2):
        assert np.array_equal(ours[i], cv2.medianBlur(flow[i], ksize))


def test_batched_pairs_equal_pairs_alone():
    """Per-pair stopping: a pair's flow must not depend on the other pairs of its batch."""
    pairs = [
        _textured_pair((1, 0), (48, 64), seed=4),
        _textured_pair((3, -2), (48, 64), seed=5),
        _textured_pair((0, 0), (48, 64), seed=6),
    ]
    backend = create_backend("torch", device="cpu")
    together = backend.compute(np.stack([p for p, _ in pairs]), np.stack([n for _, n in pairs]))
    for i, (prev, nxt) in enumerate(pairs):
        alone = backend.compute(prev[None], nxt[None])[0]
        assert np.array_equal(alone, together[i])


def test_compiled_path_runs_fixed_batches(monkeypatch):
    """With compile on, batches run at exactly preferred_batch pairs (padded, split); the flow is the
    same. torch.compile itself is swapped for the identity: compiling takes minutes on a CPU."""
    monkeypatch.setattr(T, "_compiled", lambda fn: fn)
    pairs = [_textured_pair((1, 1), (40, 48), seed=s) for s in range(5)]
    prev, nxt = np.stack([p for p, _ in pairs]), np.stack([n for _, n in pairs])
    eager = create_backend("torch", device="cpu", compile=False).compute(prev, nxt)
    backend = create_backend("torch", device="cpu", compile=True, batch=2)
    seen = []
    solve = backend._solver.__call__
    monkeypatch.setattr(backend, "_solver", lambda I0, I1: seen.append(I0.shape[0]) or solve(I0, I1))
    assert np.array_equal(backend.compute(prev, nxt), eager)
    assert seen == [2, 2, 2]


def test_empty_batch_and_bad_shapes():
    backend = create_backend("torch", device="cpu")
    assert backend.compute(np.zeros((0, 32, 32), np.uint8), np.zeros((0, 32, 32), np.uint8)).shape == (0, 32, 32, 2)
    with pytest.raises(ValueError, match="one shape"):
        backend.compute(np.zeros((1, 32, 32), np.uint8), np.zeros((1, 32, 30), np.uint8))
    with pytest.raises(ValueError, match="gamma"):
        create_backend("torch", gamma=0.5)


# ---- fidelity at 256x256 on real frames (issue 4, item 5) --------------------------------------


def _read_flo(path) -> np.ndarray:
    """Middlebury .flo -> float32 (H,W,2), NaN where the ground truth is unknown."""
    raw = np.fromfile(path, dtype=np.uint8)
    assert np.frombuffer(raw[:4].tobytes(), np.float32)[0] == np.float32(202021.25), f"not a .flo file: {path}"
    w, h = np.frombuffer(raw[4:12].tobytes(), np.int32)
    flow = np.frombuffer(raw[12 : 12 + 8 * w * h].tobytes(), np.float32).reshape(h, w, 2).copy()
    flow[np.abs(flow) >= 1e9] = np.nan
    return flow


def _gray_256(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def _gt_256(path) -> np.ndarray:
    """Ground truth resized to 256x256 (nearest, so unknown pixels stay unknown), vectors scaled."""
    flow = _read_flo(path)
    h, w = flow.shape[:2]
    small = cv2.resize(flow, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
    return small * np.array([SIZE / w, SIZE / h], np.float32)


def _clip_pair_256(path, first: int) -> tuple[np.ndarray, np.ndarray]:
    import av

    grays = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= first:
                rgb = frame.to_ndarray(format="rgb24")
                grays.append(
                    cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
                )
            if len(grays) == 2:
                break
    return grays[0], grays[1]


@pytest.fixture(scope="module")
def real_pairs():
    """name -> (prev, next, gt or None), all uint8 256x256."""
    rw = shared_path("flow_gt", "middlebury_rubberwhale")
    sintel = shared_path("flow_gt", "sintel_alley_1")
    videos = shared_path("videos")
    return {
        "rubberwhale": (
            _gray_256(rw / "rubberwhale1.png"),
            _gray_256(rw / "rubberwhale2.png"),
            _gt_256(rw / "flow_gt.flo"),
        ),
        "sintel_alley_1": (
            _gray_256(sintel / "frame_0001.png"),
            _gray_256(sintel / "frame_0002.png"),
            _gt_256(sintel / "frame_0001.flo"),
        ),
        "kinetics_arm_wrestling": _clip_pair_256(videos / "kinetics_arm_wrestling_28fps.mp4", first=60) + (None,),
        "ucf101_apply_eye_makeup": _clip_pair_256(videos / "ucf101_ApplyEyeMakeup_xvid.avi", first=40) + (None,),
        "pedestrians": _clip_pair_256(videos / "pedestrians_msmpeg4v3_10fps.avi", first=200) + (None,),
    }


TORCH_PAIRS = ["rubberwhale", "sintel_alley_1", "kinetics_arm_wrestling"]
GT_PAIRS = ["rubberwhale", "sintel_alley_1"]
ALL_PAIRS = TORCH_PAIRS + ["ucf101_apply_eye_makeup", "pedestrians"]


@pytest.fixture(scope="module")
def opencv_flows(real_pairs):
    """name -> OpenCV's CPU flow at its defaults, pair by pair: the reference."""
    backend = create_backend("opencv")
    return {n: backend.compute(p[0][None], p[1][None])[0] for n, p in real_pairs.items()}


@pytest.fixture(scope="module")
def flows(real_pairs, opencv_flows):
    """name -> (torch flow, OpenCV flow): torch in one batch of the pairs it is held to."""
    prev = np.stack([real_pairs[n][0] for n in TORCH_PAIRS])
    nxt = np.stack([real_pairs[n][1] for n in TORCH_PAIRS])
    ours = create_backend("torch", device="cpu").compute(prev, nxt)
    return {n: (ours[i], opencv_flows[n]) for i, n in enumerate(TORCH_PAIRS)}


def _epe(a, b) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)


@pytest.mark.parametrize("name", TORCH_PAIRS)
def test_torch_matches_opencv_within_a_tenth_of_a_pixel(flows, name):
    ours, ref = flows[name]
    assert np.abs(ref).max() > 0.5, "the pair should have real motion"
    epe = _epe(ours, ref).mean()
    assert epe <= 0.1, f"{name}: mean EPE torch vs OpenCV = {epe:.4f} px"


@pytest.mark.parametrize("name", GT_PAIRS)
def test_torch_error_to_ground_truth_within_5_percent_of_opencv(flows, real_pairs, name):
    ours, ref = flows[name]
    gt = real_pairs[name][2]
    known = np.isfinite(gt).all(axis=-1)
    ours_err = _epe(ours, gt)[known].mean()
    ref_err = _epe(ref, gt)[known].mean()
    assert abs(ours_err - ref_err) <= 0.05 * ref_err, f"{name}: EPE to GT torch {ours_err:.4f}, OpenCV {ref_err:.4f}"


@pytest.mark.parametrize("name", TORCH_PAIRS)
def test_quantized_flow_agrees_within_one_level(flows, name):
    ours, ref = flows[name]
    q_ours = fmt.quantize_flow(ours).astype(np.int16)
    q_ref = fmt.quantize_flow(ref).astype(np.int16)
    within = (np.abs(q_ours - q_ref) <= 1).all(axis=-1).mean()
    assert within >= 0.90, f"{name}: {within:.2%} of pixels within +-1 level"


# ---- the fused CPU backend on the same pairs (issue 13: tighter bounds, every pair) -------------


@pytest.fixture(scope="module")
def numba_flows(real_pairs):
    """name -> the numba backend's flow, all pairs in one batch (a pair's flow does not depend on it)."""
    skip_unless_available("numba")
    names = list(real_pairs)
    ours = create_backend("numba").compute(
        np.stack([real_pairs[n][0] for n in names]), np.stack([real_pairs[n][1] for n in names])
    )
    return dict(zip(names, ours))


@pytest.mark.parametrize("name", ALL_PAIRS)
def test_numba_matches_opencv_within_five_hundredths_of_a_pixel(numba_flows, opencv_flows, name):
    ours, ref = numba_flows[name], opencv_flows[name]
    assert np.abs(ref).max() > 0.5, "the pair should have real motion"
    epe = _epe(ours, ref).mean()
    assert epe <= 0.05, f"{name}: mean EPE numba vs OpenCV = {epe:.4f} px"
    q_ours = fmt.quantize_flow(ours).astype(np.int16)
    q_ref = fmt.quantize_flow(ref).astype(np.int16)
    within = (np.abs(q_ours - q_ref) <= 1).all(axis=-1).mean()
    assert within >= 0.97, f"{name}: {within:.2%} of pixels within +-1 level"


@pytest.mark.parametrize("name", GT_PAIRS)
def test_numba_error_to_ground_truth_within_2_percent_of_opencv(numba_flows, opencv_flows, real_pairs, name):
    gt = real_pairs[name][2]
    known = np.isfinite(gt).all(axis=-1)
    ours_err = _epe(numba_flows[name], gt)[known].mean()
    ref_err = _epe(opencv_flows[name], gt)[known].mean()
    assert abs(ours_err - ref_err) <= 0.02 * ref_err, f"{name}: EPE to GT numba {ours_err:.4f}, OpenCV {ref_err:.4f}"


def test_numba_real_pair_alone_equals_its_batch_result(numba_flows, real_pairs):
    name = "kinetics_arm_wrestling"  # the most iterations: the stopping test matters most
    prev, nxt, _ = real_pairs[name]
    assert np.array_equal(create_backend("numba").compute(prev[None], nxt[None])[0], numba_flows[name])


def test_numba_compiled_levels_equal_python_driven_levels_on_real_pairs(numba_flows, real_pairs):
    """Each pyramid level one compiled call (the default) or driven from Python kernel by kernel: the
    same kernels in the same order, so the same bits on every real pair."""
    from flowprep.flow.numba_tvl1 import FusedTVL1Solver, NumbaTVL1

    python_levels = FusedTVL1Solver(NumbaTVL1()._params, compiled_levels=False)
    for name, (prev, nxt, _) in real_pairs.items():
        assert np.array_equal(python_levels(prev.astype(np.float32), nxt.astype(np.float32)), numba_flows[name]), name


# ---- the backend in a real extract (issue 4, done-when) ---------------------------------------


def test_extract_with_torch_backend_verifies_and_names_it(tmp_path, write_video):
    """`flowprep extract --flow-backend torch` gives shards that verify accepts, metadata naming the
    backend and its parameters, and flow JPEGs within a level or two of the OpenCV backend's."""
    import webdataset as wds
    from click.testing import CliRunner

    from flowprep.cli import main

    for i in range(2):
        write_video(tmp_path / "videos" / "right" / f"v{i}.avi", frames=4, size_px=48, seed=i)
    flows = {}
    for backend in ("torch", "opencv"):
        out = tmp_path / backend
        args = [
            "extract",
            "--no-progress",
            "--dataset",
            "folder",
            "--root",
            str(tmp_path / "videos"),
            "--out",
            str(out),
            "--executor",
            "inline",
            "--size",
            "48",
            "--flow-backend",
            backend,
            "--flow-param",
            "nscales=2",
            "--flow-param",
            "warps=2",
        ]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0
        samples = list(wds.WebDataset(sorted(str(p) for p in out.glob("*.tar")), shardshuffle=False))
        assert len(samples) == 2
        meta = json.loads(samples[0]["json"])
        assert meta["flow"]["backend"] == backend, meta["flow"]
        assert meta["flow"]["params"]["nscales"] == 2 and meta["flow"]["params"]["warps"] == 2
        flows[backend] = {
            s["__key__"]: cv2.imdecode(np.frombuffer(s["flow_x.000000.jpg"], np.uint8), 0) for s in samples
        }
    for key, levels in flows["torch"].items():
        diff = np.abs(levels.astype(int) - flows["opencv"][key].astype(int))
        assert np.mean(diff <= 1) >= 0.9, f"{key}: {np.mean(diff <= 1):.3f} of flow x pixels within +-1 level"
