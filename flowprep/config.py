"""ExtractConfig: the one typed config of `flowprep extract`; CLI flags map one to one onto its fields."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from . import format as fmt
from .decode import Resize
from .core import VideoSettings

# Fields that change what lands in the shards; a resumed run must agree on all of them.
CONTENT_FIELDS = (
    "dataset", "root", "annotations", "split", "partitions", "limit", "resize_mode", "size_px", "fps", "frame_fps",
    "max_frames", "flow_backend", "flow_params", "bound_px", "flow_jpeg_quality", "rgb_jpeg_quality",
    "videos_per_task", "seed",
    "flow_stride", "flow_every", "flow_format",
)


@dataclass(frozen=True)
class ExtractConfig:
    dataset: str
    out: str
    root: str | None = None
    annotations: str | None = None
    split: str = "1"  # official split whose partitions (train/test/...) the shards follow
    partitions: tuple[str, ...] = ()  # empty: every partition of `split` except 'unused'
    limit: int | None = None  # extract only the first N videos of the (shuffled) plan
    resize_mode: str = "square"
    size_px: int = 256
    fps: float | None = None
    frame_fps: float = 0.0  # rate of frame-folder videos (images have no timestamps); 0: the dataset's own (12 for Jester, SSv1)
    max_frames: int | None = None
    video_timeout_s: float = 3600.0  # wall-clock limit per video; 0: none (a hung decoder then hangs its task)
    flow_backend: str = "auto"  # resolved on the driver (numba on a CPU node) and recorded resolved
    flow_params: tuple[tuple[str, float], ...] = ()  # OpenCV-named TV-L1 overrides, e.g. (('warps', 3),)
    bound_px: float = 20.0
    flow_jpeg_quality: int = 95
    rgb_jpeg_quality: int = 95
    # issue 25: which frame pairs get flow and how flow is stored (format.FlowLayout)
    flow_stride: int = 1  # flow j runs from frame j*flow_every to frame j*flow_every + flow_stride
    flow_every: int = 1  # flow for every M-th frame only
    flow_format: str = "jpeg"  # jpeg (quantized, the papers') | png16 (16-bit, scale + offset recorded) | npz (float32)
    videos_per_task: int = 32  # the most videos a task (and so its shards) holds
    plan: str = "work"  # 'work': tasks of equal estimated work, long videos split (plan.py); 'count': videos_per_task each
    shard_max_bytes: int = 512 * 2**20  # a task rolls over to a new shard past this size
    seed: int = 0
    workers: int = 0  # 0: one per core of this machine, or the Ray cluster's CPUs (resolved by the runner)
    # 'auto': processes on one machine, ray with a cluster (--ray-address, RAY_ADDRESS) or flow actors;
    # 'ray' (a local Ray or a cluster), 'processes' (this machine, no Ray), 'inline' (this process)
    executor: str = "auto"
    ray_address: str | None = None  # None: a local Ray; 'auto' or 'host:port': an existing cluster
    max_in_flight: int = 0  # 0: 2 x workers tasks submitted at a time
    threads_per_worker: int = 0  # OpenCV threads per worker; 0: cores / workers (never oversubscribe)
    task_memory_mb: int = 0  # Ray `memory` reserved per task (MiB); 0: none declared
    task_retries: int = 3  # Ray retries of a task whose worker or node died (a bad video is never retried)
    flow_actors: int = 0  # 0: flow computed inside each task; N: on N Ray actors shared by the tasks
    gpus_per_flow_actor: float | None = None  # None: 1 for a CUDA backend, 0 for a CPU one

    def __post_init__(self):
        Resize(self.resize_mode, self.size_px)  # validates
        checks = [
            (self.executor in ("auto", "ray", "processes", "inline"),
             f"executor must be auto, ray, processes or inline, not {self.executor!r}"),
            (self.workers >= 0, f"workers must be >= 0 (0: one per core), not {self.workers}"),
            (self.flow_stride >= 1, f"flow_stride must be >= 1, not {self.flow_stride}"),
            (self.flow_every >= 1, f"flow_every must be >= 1, not {self.flow_every}"),
            (self.flow_format in fmt.FLOW_FORMATS,
             f"flow_format must be one of {', '.join(fmt.FLOW_FORMATS)}, not {self.flow_format!r}"),
            (self.plan in ("work", "count"), f"plan must be work or count, not {self.plan!r}"),
            (self.videos_per_task >= 1, f"videos_per_task must be >= 1, not {self.videos_per_task}"),
            (self.task_memory_mb >= 0, f"task_memory_mb must be >= 0, not {self.task_memory_mb}"),
            (self.task_retries >= 0, f"task_retries must be >= 0, not {self.task_retries}"),
            (self.max_in_flight >= 0, f"max_in_flight must be >= 0, not {self.max_in_flight}"),
            (0 < self.bound_px <= 1000, f"bound_px must be in (0, 1000], not {self.bound_px}"),
            (1 <= self.flow_jpeg_quality <= 100, f"flow_jpeg_quality must be 1..100, not {self.flow_jpeg_quality}"),
            (1 <= self.rgb_jpeg_quality <= 100, f"rgb_jpeg_quality must be 1..100, not {self.rgb_jpeg_quality}"),
            (self.fps is None or self.fps > 0, f"fps must be > 0, not {self.fps}"),
            (self.frame_fps >= 0, f"frame_fps must be >= 0, not {self.frame_fps}"),
            (self.video_timeout_s >= 0, f"video_timeout_s must be >= 0, not {self.video_timeout_s}"),
            (self.limit is None or self.limit >= 0, f"limit must be >= 0, not {self.limit}"),
            (self.split in ("1", "2", "3"), f"split must be 1, 2 or 3, not {self.split!r}"),
            (self.flow_actors >= 0, f"flow_actors must be >= 0, not {self.flow_actors}"),
            (not (self.flow_actors and self.executor in ("processes", "inline")),
             f"flow actors need --executor ray, not {self.executor}"),
            (not (self.ray_address and self.executor == "processes"),
             "--executor processes runs on this machine only: drop --ray-address, or use --executor ray"),
            (self.gpus_per_flow_actor is None or (self.gpus_per_flow_actor >= 0 and (
                self.gpus_per_flow_actor <= 1 or float(self.gpus_per_flow_actor).is_integer())),  # Ray's rule
             f"gpus_per_flow_actor must be a fraction in [0, 1] or a whole number, not {self.gpus_per_flow_actor}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def video_settings(self, decode_threads: int = 0) -> VideoSettings:
        return VideoSettings(Resize(self.resize_mode, self.size_px), self.bound_px, self.flow_jpeg_quality,
                             self.rgb_jpeg_quality, self.fps, self.max_frames, self.video_timeout_s, decode_threads,
                             self.flow_layout())

    def flow_layout(self) -> fmt.FlowLayout:
        return fmt.FlowLayout(self.flow_stride, self.flow_every, self.flow_format)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def content_fingerprint(self) -> str:
        content = {name: getattr(self, name) for name in CONTENT_FIELDS}
        # Fields added while jobs were running count only away from their defaults: such a job still resumes.
        for name, default in (("flow_stride", 1), ("flow_every", 1), ("flow_format", "jpeg")):
            if content[name] == default:
                del content[name]
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
