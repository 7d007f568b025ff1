"""Flow on Ray actors that hold a GPU: CPU tasks decode, resize and encode, the actors batch their flow.

`FlowActor` builds one backend once and merges the requests of many CPU tasks into batched `compute`
calls; `RemoteFlow` is the `FlowBackend` those tasks hand to the core in place of a local backend
(the actor's backend's `name`, `params()` and `preferred_batch`; `levels` and `compute` run on the
actor), so the core never learns about Ray. The driver's side, which starts the actors, gives each
task the least-loaded one and stops them, is `executors.flow_pool.FlowPool`, beside the Ray executor.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..errors import last_line
from .base import FlowBackend

ACTOR_CPUS = 1  # an actor's event loop, (un)pickling and host<->GPU copies keep about one core busy


def default_gpus_per_actor(backend_cls: type[FlowBackend]) -> float:
    """1 GPU per actor for a backend that needs one (`needs_gpu`: 'torch-cuda', 'opencv-cuda'), none otherwise."""
    return 1.0 if backend_cls.needs_gpu else 0.0


@dataclass
class _Request:
    prev_u8: np.ndarray  # uint8 (n,H,W)
    next_u8: np.ndarray  # uint8 (n,H,W)
    arrived_s: float  # event-loop time
    future: object  # asyncio.Future -> float32 (n,H,W,2)


class FlowActor:
    """Async Ray actor: one flow backend, requests from many callers merged into batches.

    A batch runs when `max_pairs` pairs of one frame size are queued, or `max_wait_s` after its oldest
    request arrived. The backend runs in one side thread, so requests keep queueing while a batch
    computes. A batch that raises is redone request by request: only the bad request gets the error.
    """

    def __init__(self, backend_cls, params: dict, max_pairs: int = 0, max_wait_s: float = 0.01):
        from concurrent.futures import ThreadPoolExecutor

        self.backend = backend_cls(**params)
        self.max_pairs = int(max_pairs or max(1, self.backend.preferred_batch))
        self.max_wait_s = float(max_wait_s)
        self._queue: list[_Request] = []
        self._arrived = None  # asyncio.Event, made inside the actor's event loop on first use
        self._loop_task = None
        self._gpu = ThreadPoolExecutor(1)  # one backend call at a time
        self.pairs_per_call: Counter = Counter()  # batch size (pairs) -> backend calls of that size
        self.requests = 0

    def describe(self) -> dict:
        """What the sample json records (the real backend), and where the actor runs."""
        import ray

        return {
            "name": self.backend.name,
            "params": self.backend.params(),
            "preferred_batch": int(self.backend.preferred_batch),
            "node_id": ray.get_runtime_context().get_node_id() if ray.is_initialized() else "",
        }

    def stats(self) -> dict:
        return {
            "requests": self.requests,
            "calls": sum(self.pairs_per_call.values()),
            "pairs": sum(n * c for n, c in self.pairs_per_call.items()),
            "pairs_per_call": dict(self.pairs_per_call),
        }

    async def compute(self, prev_u8: np.ndarray, next_u8: np.ndarray) -> np.ndarray:
        """uint8 (n,H,W) x2 -> float32 (n,H,W,2) px, in the next batch of the backend."""
        import asyncio

        if prev_u8.shape != next_u8.shape or prev_u8.ndim != 3:
            raise ValueError(f"expected two uint8 (n,H,W) arrays of one shape, got {prev_u8.shape} and {next_u8.shape}")
        loop = asyncio.get_running_loop()
        if self._loop_task is None:
            self._arrived = asyncio.Event()
            self._loop_task = loop.create_task(self._batch_loop())
        request = _Request(prev_u8, next_u8, loop.time(), loop.create_future())
        self._queue.append(request)
        self.requests += 1
        self._arrived.set()
        return await request.future

    async def compute_window(self, window_u8: np.ndarray) -> np.ndarray:
        """uint8 (n+1,H,W) consecutive frames -> float32 (n,H,W,2) px: their n flows (half the bytes of pairs)."""
        return await self.compute(window_u8[:-1], window_u8[1:])

    async def levels(self, window_u8: np.ndarray, bound_px: float) -> np.ndarray:
        """`FlowBackend.levels` on the actor: uint8 (n+1,H,W) window -> uint8 (n,H,W,2) `format.quantize_flow` levels.

        The flow of many callers' windows is computed in one batch, so it is quantized here per request
        (the backend's own `levels` takes one window); the reply is a quarter of float32 flow's bytes,
        and the levels are the ones the CPU task would have computed.
        """
        import asyncio

        from .. import format as fmt

        flow_xy = await self.compute_window(window_u8)
        return await asyncio.get_running_loop().run_in_executor(None, fmt.quantize_flow, flow_xy, bound_px)

    async def _batch_loop(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            # Wait for more callers to join, but never past the oldest request's deadline.
            while self._queued_pairs() < self.max_pairs:
                remaining_s = self._queue[0].arrived_s + self.max_wait_s - loop.time()
                if remaining_s <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining_s)
                except asyncio.TimeoutError:
                    break
            await self._run(self._take_batch())

    def _queued_pairs(self) -> int:
        hw = self._queue[0].prev_u8.shape[1:]
        return sum(len(r.prev_u8) for r in self._queue if r.prev_u8.shape[1:] == hw)

    def _take_batch(self) -> list[_Request]:
        """The oldest request, then later ones of its frame size while they fit in max_pairs."""
        first = self._queue[0]
        batch, pairs = [first], len(first.prev_u8)
        for r in self._queue[1:]:
            if r.prev_u8.shape[1:] == first.prev_u8.shape[1:] and pairs + len(r.prev_u8) <= self.max_pairs:
                batch.append(r)
                pairs += len(r.prev_u8)
        taken = {id(r) for r in batch}
        self._queue = [r for r in self._queue if id(r) not in taken]
        return batch

    async def _run(self, batch: list[_Request]) -> None:
        import asyncio

        try:
            prev_u8 = np.concatenate([r.prev_u8 for r in batch])
            next_u8 = np.concatenate([r.next_u8 for r in batch])
            flow_xy = await asyncio.get_running_loop().run_in_executor(
                self._gpu, self.backend.compute, prev_u8, next_u8
            )
            self.pairs_per_call[len(prev_u8)] += 1
            if flow_xy.shape != prev_u8.shape + (2,):
                raise RuntimeError(f"backend returned flow of shape {flow_xy.shape} for pairs {prev_u8.shape}")
        except Exception as exc:
            if len(batch) > 1:  # find the request at fault: the others must not fail with it
                for request in batch:
                    await self._run([request])
            elif not batch[0].future.done():
                batch[0].future.set_exception(exc)
            return
        start = 0
        for request in batch:
            n = len(request.prev_u8)
            if not request.future.done():  # a caller may have gone away
                request.future.set_result(flow_xy[start : start + n])
            start += n


class RemoteFlow(FlowBackend):
    """The FlowBackend of a CPU task whose flow runs on a FlowActor; picklable, handed to the tasks.

    `needs_gpu` is False: the task holding it needs none (the actor's GPU came from its backend's class)."""

    def __init__(self, actor, described: dict):
        self.actor = actor
        self.name = described["name"]
        self._params = described["params"]
        self.preferred_batch = described["preferred_batch"]
        self.node_id = described["node_id"]

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, ""  # made from a started actor's `describe()`: the actor built the backend

    def params(self) -> dict:
        return dict(self._params)

    def compute(self, prev_u8: np.ndarray, next_u8: np.ndarray) -> np.ndarray:
        """uint8 (B,H,W) x2 -> float32 (B,H,W,2) px, computed on the actor."""
        return self._wait(self.actor.compute.remote(np.asarray(prev_u8), np.asarray(next_u8)))

    def levels(self, window_u8: np.ndarray, bound_px: float) -> np.ndarray:
        """uint8 (B+1,H,W) window -> uint8 (B,H,W,2) levels: the window goes once (half the bytes of pairs),
        flow and quantization run on the actor, and a quarter of float32 flow's bytes come back."""
        return self._wait(self.actor.levels.remote(np.asarray(window_u8), float(bound_px)))

    def _wait(self, call):
        import ray

        try:
            # A plain ray.get on purpose: while this task waits for the GPU, Ray lends its CPU to the
            # next queued task (decode / encode of another video), which is the CPU-GPU overlap;
            # --max-in-flight bounds how many tasks that lets run at once.
            return ray.get(call)
        except ray.exceptions.RayTaskError as exc:  # the backend raised: say what, not Ray's traceback
            cause = exc.cause if exc.cause is not None else last_line(exc)
            raise RuntimeError(f"{self.name} flow on a flow actor failed: {type(cause).__name__}: {cause}") from None
        except ray.exceptions.RayActorError as exc:
            raise RuntimeError(f"{self.name} flow actor died: {str(exc).strip().splitlines()[0]}") from None
