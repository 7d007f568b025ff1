"""Flow on Ray actors (`--flow-actors`): batching, error isolation, and shards equal to in-task flow."""

from __future__ import annotations

import asyncio
import logging
import re
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from flowprep.cli import EXIT_OK, EXIT_PARTIAL, main
from flowprep.config import ExtractConfig
from flowprep.flow.opencv_tvl1 import OpenCVTVL1
from flowprep.flow.remote import FlowActor, RemoteFlow
from tests.test_extract import FAST_FLOW, extract, manifest, read_back


class CountingFlow:
    """Stand-in backend whose flow of a pair is (next - prev, prev): a mixed-up split shows at once."""

    name = "test-counting"
    preferred_batch = 8

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, ""

    def __init__(self, **overrides):
        self.pairs_per_call: list[int] = []

    def params(self) -> dict:
        return {"kind": "difference"}

    def compute(self, prev_u8: np.ndarray, next_u8: np.ndarray) -> np.ndarray:
        self.pairs_per_call.append(len(prev_u8))
        if (prev_u8.reshape(len(prev_u8), -1).max(axis=1) < 30).any():
            raise ValueError("dark frames in the batch")
        return np.stack([next_u8.astype(np.float32) - prev_u8, prev_u8.astype(np.float32)], axis=-1)


class DarkFailsTVL1(OpenCVTVL1):
    """OpenCV TV-L1 that raises on a dark pair: a backend error tied to one video."""

    name = "test-dark-fails"
    preferred_batch = 2

    def compute(self, prev_u8: np.ndarray, next_u8: np.ndarray) -> np.ndarray:
        dark = [i for i in range(len(prev_u8)) if prev_u8[i].max() < 30]
        if dark:
            raise ValueError(f"dark frames at pairs {dark} of a batch of {len(prev_u8)}")
        return super().compute(prev_u8, next_u8)


def frames(n: int, hw: tuple[int, int] = (8, 8), seed: int = 0, dark: bool = False) -> np.ndarray:
    """uint8 (n,H,W) random frames (levels 0..9 when `dark`)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 10 if dark else 256, (n, *hw), dtype=np.uint8)


def expected_flow(window_u8: np.ndarray) -> np.ndarray:
    return CountingFlow().compute(window_u8[:-1], window_u8[1:])


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    # The stand-in backends live in this file: ship them to the actors by value, not by import path.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


# ---- the batching loop, without Ray ----------------------------------------------------------


def test_concurrent_requests_become_one_call_and_results_go_back_to_their_callers():
    actor = FlowActor(CountingFlow, {}, max_pairs=6, max_wait_s=0.5)
    windows = [frames(3, seed=s) for s in range(3)]  # 2 pairs each: one full batch of 6
    other_size = frames(2, hw=(4, 6), seed=9)  # 1 pair of another frame size: never in the same batch

    async def callers():
        return await asyncio.gather(
            actor.compute_window(windows[0]),
            actor.compute_window(other_size),
            *(actor.compute(w[:-1], w[1:]) for w in windows[1:]),
        )

    flow_0, other_flow, *flows = asyncio.run(asyncio.wait_for(callers(), 120))
    assert actor.backend.pairs_per_call == [6, 1], "the full batch first, the odd size alone after max_wait_s"
    for window, flow in zip(windows, [flow_0, *flows]):
        np.testing.assert_array_equal(flow, expected_flow(window))
    np.testing.assert_array_equal(other_flow, expected_flow(other_size))
    assert actor.stats() == {"requests": 4, "calls": 2, "pairs": 7, "pairs_per_call": {6: 1, 1: 1}}


def test_a_failing_request_fails_alone():
    actor = FlowActor(CountingFlow, {}, max_pairs=6, max_wait_s=60)
    windows = [frames(3, seed=1), frames(3, seed=2, dark=True), frames(3, seed=3)]

    async def callers():
        return await asyncio.gather(*(actor.compute_window(w) for w in windows), return_exceptions=True)

    good_a, bad, good_b = asyncio.run(asyncio.wait_for(callers(), 120))
    assert isinstance(bad, ValueError) and "dark frames" in str(bad)
    np.testing.assert_array_equal(good_a, expected_flow(windows[0]))
    np.testing.assert_array_equal(good_b, expected_flow(windows[2]))
    assert actor.backend.pairs_per_call == [6, 2, 2, 2], "one merged try, then each request on its own"


# ---- through Ray -----------------------------------------------------------------------------


@pytest.mark.cluster
def test_flow_actor_merges_requests_of_concurrent_ray_tasks(ray_local):
    ray = ray_local
    actor = ray.remote(FlowActor).options(num_cpus=0).remote(CountingFlow, {}, max_pairs=8, max_wait_s=120)
    flow = RemoteFlow(actor, ray.get(actor.describe.remote()))
    assert flow.name == "test-counting" and flow.params() == {"kind": "difference"} and flow.preferred_batch == 8

    @ray.remote(num_cpus=0)
    def cpu_task(remote_flow, window_u8):
        return remote_flow.compute(window_u8[:-1], window_u8[1:])

    windows = [frames(3, seed=s) for s in range(4)]  # 4 tasks x 2 pairs = one batch of 8
    flows = ray.get([cpu_task.remote(flow, w) for w in windows], timeout=180)
    for window, flow_xy in zip(windows, flows):
        np.testing.assert_array_equal(flow_xy, expected_flow(window))
    stats = ray.get(actor.stats.remote())
    assert stats["requests"] == 4 and stats["pairs_per_call"] == {8: 1}
    ray.kill(actor)


@pytest.mark.cluster
def test_extract_with_flow_actors_writes_the_same_shards_as_in_task_flow(ray_local, tmp_path, caplog):
    # The sample dataset (generated on first use under --root) is 64 videos: keep the first 8 of the plan.
    common = [
        "--dataset",
        "sample",
        "--root",
        str(tmp_path / "videos"),
        "--size",
        "32",
        "--max-frames",
        "5",
        "--limit",
        "8",
        "--videos-per-task",
        "2",
        *FAST_FLOW,
    ]
    extract(*common, "--out", str(tmp_path / "in_task"), "--executor", "inline")
    caplog.set_level(logging.INFO, logger="flowprep.executors.flow_pool")
    extract(*common, "--out", str(tmp_path / "actors"), "--workers", "2", "--flow-actors", "1")

    in_task, on_actors = read_back(tmp_path / "in_task"), read_back(tmp_path / "actors")
    assert len(on_actors) == 8 and set(on_actors) == set(in_task)
    for key, sample in in_task.items():
        members = {m: data for m, data in sample.items() if not m.startswith("__")}  # not __url__ etc.
        assert len(members) == 2 + 5 + 2 * 4  # json, cls, 5 rgb, 4 flow x + 4 flow y
        for member, data in members.items():
            assert on_actors[key][member] == data, f"{key} {member} differs"
    import json

    record = json.loads(on_actors[next(iter(on_actors))]["json"])
    assert record["flow"]["backend"] == "opencv" and record["flow"]["params"]["nscales"] == 1
    # Every flow of the job went through the actor (the log of FlowPool.stop), none in the tasks.
    flows = sum(r["flows"] for r in manifest(tmp_path / "actors") if r["status"] == "ok")
    logged = [m for m in caplog.messages if m.startswith("flow actors:")]
    assert logged and int(re.search(r"(\d+) pairs", logged[-1]).group(1)) == flows == 8 * 4
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "actors")])
    assert result.exit_code == EXIT_OK, result.output


@pytest.mark.cluster
def test_a_flow_error_on_the_actor_is_that_videos_failed_row(ray_local, tmp_path, write_video, monkeypatch):
    from flowprep import flow as flow_registry
    from flowprep.datasets.sample import write_avi

    monkeypatch.setattr(
        flow_registry,
        "BACKENDS",
        flow_registry.BACKENDS.with_entries({DarkFailsTVL1.name: f"{__name__}:DarkFailsTVL1"}),
    )
    root = tmp_path / "videos"
    for i in range(3):
        write_video(root / "moving" / f"good_{i}.avi", frames=5, size_px=32, seed=i)
    (root / "dark").mkdir()
    write_avi(root / "dark" / "black.avi", np.zeros((5, 32, 32, 3), np.uint8))
    out = tmp_path / "out"
    extract(
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--out",
        str(out),
        "--size",
        "32",
        "--workers",
        "2",
        "--videos-per-task",
        "1",
        *FAST_FLOW,
        "--flow-backend",
        DarkFailsTVL1.name,
        "--flow-actors",
        "1",
        expect=EXIT_PARTIAL,
    )
    rows = {r["video_id"]: r for r in manifest(out) if r["status"] != "skipped"}
    assert {v: r["status"] for v, r in rows.items()} == {
        "good_0": "ok",
        "good_1": "ok",
        "good_2": "ok",
        "black": "failed",
    }
    assert "ValueError" in rows["black"]["error"] and "dark frames" in rows["black"]["error"]
    assert all(r["flows"] == 4 for v, r in rows.items() if v != "black")


@pytest.mark.parametrize(
    "fields, bad",
    [
        ({"flow_actors": -1}, "flow_actors must be >= 0"),
        ({"flow_actors": 2, "executor": "inline"}, "flow actors need --executor ray"),
        ({"flow_actors": 2, "gpus_per_flow_actor": 1.5}, "gpus_per_flow_actor must be"),
        ({"flow_actors": 2, "gpus_per_flow_actor": -1.0}, "gpus_per_flow_actor must be"),
    ],
)
def test_bad_flow_actor_settings_stop_the_run_naming_the_value(fields, bad):
    with pytest.raises(ValueError, match=bad):
        ExtractConfig(dataset="sample", out="/tmp/unused", **fields)


def test_driver_without_the_backend_starts_actors_and_refuses_auto(tmp_path, monkeypatch):
    """With --flow-actors the driver neither needs the backend's accelerator nor guesses `auto`."""
    from flowprep import flow
    from flowprep.config import ExtractConfig
    from flowprep.runner import run_extract

    cfg = ExtractConfig(
        dataset="sample",
        root=str(tmp_path / "v"),
        out=str(tmp_path / "o"),
        flow_backend="auto",
        flow_actors=1,
        executor="ray",
    )
    with pytest.raises(ValueError, match="name the backend"):
        run_extract(cfg, show_progress=False)
    # A backend unavailable on the driver is not checked there (the actors' nodes have it).
    monkeypatch.setattr(flow, "resolve_backend_name", lambda name: pytest.fail("the driver resolved the backend"))
    with pytest.raises(ValueError, match="unknown flow backend"):
        run_extract(
            ExtractConfig(
                dataset="sample", root=str(tmp_path / "v"), out=str(tmp_path / "o2"), flow_backend="nope", flow_actors=1
            ),
            show_progress=False,
        )


def test_levels_from_the_actor_are_the_quantized_flow_in_a_quarter_of_the_bytes():
    from flowprep import format as fmt

    actor = FlowActor(CountingFlow, {}, max_pairs=4, max_wait_s=0.01)
    window = frames(4, seed=5)
    levels = asyncio.run(asyncio.wait_for(actor.levels(window, 20.0), 60))
    flow_xy = expected_flow(window)
    assert levels.dtype == np.uint8 and levels.nbytes * 4 == flow_xy.astype(np.float32).nbytes
    np.testing.assert_array_equal(levels, fmt.quantize_flow(flow_xy, 20.0))
