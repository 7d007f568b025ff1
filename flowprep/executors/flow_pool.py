"""The driver's flow actors (`--flow-actors N`), beside the Ray executor that hands them to its tasks.

`FlowPool.start` places the actors (`flow.remote.FlowActor`, one backend each) before the tasks,
`acquire` gives each task the least-loaded one as a `RemoteFlow`, `near` runs the task on that actor's
node, and `stop` kills them and says what they did.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from ..config import ExtractConfig
from ..errors import last_line
from ..flow.remote import ACTOR_CPUS, FlowActor, RemoteFlow, default_gpus_per_actor

log = logging.getLogger(__name__)

ACTOR_START_TIMEOUT_S = 300.0  # actors not placed by then: more GPUs asked for than the cluster has


class FlowPool:
    """The driver's flow actors: started before the tasks, the least-loaded one given to each task."""

    def __init__(self, flows: list[RemoteFlow]):
        self.flows = flows
        self.load = [0] * len(flows)  # tasks in flight per actor
        self.flow_of: dict[Any, int] = {}  # task ObjectRef -> index into flows

    @classmethod
    def start(cls, cfg: ExtractConfig, ray: Any) -> FlowPool:
        """`cfg.flow_actors` actors with `cfg.gpus_per_flow_actor` GPUs each, spread over the nodes."""
        from ..flow import backend_class

        backend_cls = backend_class(cfg.flow_backend)
        gpus = cfg.gpus_per_flow_actor if cfg.gpus_per_flow_actor is not None else default_gpus_per_actor(backend_cls)
        # Restarted when it dies (node lost, driver crash); the call in flight is retried once on the new one.
        actor_cls = ray.remote(FlowActor).options(
            num_cpus=ACTOR_CPUS, num_gpus=gpus, max_restarts=-1, max_task_retries=1, scheduling_strategy="SPREAD"
        )
        actors = [actor_cls.remote(backend_cls, dict(cfg.flow_params)) for _ in range(cfg.flow_actors)]
        try:
            described = ray.get([a.describe.remote() for a in actors], timeout=ACTOR_START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            cls._kill(actors, ray)
            raise RuntimeError(
                f"{cfg.flow_actors} flow actor(s) with {gpus} GPU(s) each were not placed within "
                f"{ACTOR_START_TIMEOUT_S:.0f} s; the cluster has {ray.cluster_resources().get('GPU', 0):g} GPU(s) "
                f"and {ray.cluster_resources().get('CPU', 0):g} CPU(s): lower --flow-actors or --gpus-per-flow-actor"
            ) from None
        except ray.exceptions.RayActorError as exc:
            cls._kill(actors, ray)
            raise RuntimeError(f"a {cfg.flow_backend} flow actor failed to start: {last_line(exc)}") from None
        log.info(
            "%d %s flow actor(s), %g GPU(s) each, on %d node(s)",
            len(actors),
            cfg.flow_backend,
            gpus,
            len({d["node_id"] for d in described}),
        )
        return cls([RemoteFlow(a, d) for a, d in zip(actors, described)])

    def acquire(self) -> RemoteFlow:
        index = min(range(len(self.flows)), key=self.load.__getitem__)
        self.load[index] += 1
        return self.flows[index]

    def near(self, flow: RemoteFlow) -> Any:
        """Run the task on its actor's node (frames and flow stay local), elsewhere when that node is full."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(flow.node_id, soft=True, _spill_on_unavailable=True)

    def submitted(self, ref: Any, flow: RemoteFlow) -> None:
        self.flow_of[ref] = self.flows.index(flow)

    def release(self, ref: Any) -> None:
        index = self.flow_of.pop(ref, None)
        if index is not None:
            self.load[index] -= 1

    def stop(self, ray: Any) -> dict[str, int]:
        """Kill the actors; returns (and logs) what they did: requests, backend calls, pairs."""
        totals: Counter[str] = Counter()
        try:
            for stats in ray.get([f.actor.stats.remote() for f in self.flows], timeout=30):
                totals.update(requests=stats["requests"], calls=stats["calls"], pairs=stats["pairs"])
        except ray.exceptions.RayError as exc:  # statistics are best effort
            log.warning("flow actor statistics unavailable: %s", exc)
        self._kill([f.actor for f in self.flows], ray)
        log.info(
            "flow actors: %d requests, %d backend calls, %d pairs (%.1f pairs per call)",
            totals["requests"],
            totals["calls"],
            totals["pairs"],
            totals["pairs"] / max(totals["calls"], 1),
        )
        return dict(totals)

    @staticmethod
    def _kill(actors: list[Any], ray: Any) -> None:
        for actor in actors:
            ray.kill(actor, no_restart=True)
