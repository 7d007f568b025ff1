"""ExtractConfig: the one typed config of `flowprep extract`; CLI flags map one to one onto its fields.

Each field is declared with `cli_config.option`: default, help (the flag's), choices, whether it is
content (it changes what lands in the shards: a resumed run must agree on every content field, see
`fingerprint`) and, where the flag reads otherwise, its `cli` spelling. A new field is one declaration.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from . import format as fmt
from .cli_config import REQUIRED, StrEnum, coerce_fields, fingerprint, option
from .core import VideoSettings
from .decode import RESIZE_MODES, Resize

MIB = 2**20


class PlanKind(StrEnum):
    WORK = "work"  # tasks of equal estimated work, long videos cut into ranges (plan.py)
    COUNT = "count"  # videos_per_task videos each, in order


def executor_names() -> tuple[str, ...]:
    from .executors import EXECUTORS

    return ("auto", *EXECUTORS.names())


def parse_flow_params(values: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    """('warps=3', 'tau=0.25') -> (('warps', 3), ('tau', 0.25)); ValueError naming a malformed one."""
    params: list[tuple[str, Any]] = []
    for value in values:
        name, sep, number = value.partition("=")
        if not sep:
            raise ValueError(f"{value!r}: expected NAME=VALUE, e.g. warps=3")
        try:
            params.append((name, float(number) if "." in number else int(number)))
        except ValueError:
            raise ValueError(f"{value!r}: {number!r} is not a number") from None
    return tuple(params)


@dataclass(frozen=True)
class ExtractConfig:
    dataset: str = option(
        REQUIRED, "Registry name: see `flowprep datasets`.", content=True, cli={"required": True, "show_default": False}
    )
    out: str = option(
        REQUIRED,
        "Output folder or URL (s3://bucket/prefix). Default: ./shards/<dataset>.",
        content=False,
        cli={"show_default": False},
    )
    root: str | None = option(
        None,
        "Dataset folder or URL (s3://...). Default: $FLOWPREP_DATA/<dataset>, else "
        "./data/<dataset>. `sample`: where to generate it.",
        content=True,
        cli={"show_default": False},
    )
    annotations: str | None = option(
        None, "Split files / CSVs, when not inside --root.", content=True, cli={"show_default": False}
    )
    split: str = option("1", "Official split (1-3) whose partitions the shards follow.", ("1", "2", "3"), content=True)
    partitions: tuple[str, ...] = option(
        (), "Comma list, e.g. train,test (default: all but 'unused').", content=True, cli={"show_default": False}
    )
    limit: int | None = option(
        None, "Extract only the first N videos of the shuffled plan.", content=True, cli={"show_default": False}
    )
    resize_mode: str = option(
        "square", "square: SIZExSIZE (the paper); short: short side to SIZE, aspect kept.", RESIZE_MODES, content=True
    )
    size_px: int = option(256, "Output size in px.", content=True, cli={"flag": "--size"})
    fps: float | None = option(
        None, "Resample to a constant frame rate (default: every frame).", content=True, cli={"show_default": False}
    )
    # images have no timestamps; 0: the dataset's own rate (12 for Jester, SSv1)
    frame_fps: float = option(
        0.0,
        "Frame rate of frame-folder videos (default: the dataset's own, 12 for jester and sthv1).",
        content=True,
        cli={"show_default": False},
    )
    max_frames: int | None = option(
        None, "Stop each video after N frames (debugging).", content=True, cli={"show_default": False}
    )
    # 0: none (a hung decoder then hangs its task)
    video_timeout_s: float = option(
        3600.0, "Wall-clock limit per video; a video over it is a failed row 'timeout' (0: no limit).", content=False
    )
    # resolved on the driver (numba on a CPU node) and recorded resolved
    flow_backend: str = option(
        "auto",
        "Registry name (`opencv`: the reference) or 'auto': the fastest available (numba on a CPU).",
        content=True,
    )
    flow_params: tuple[tuple[str, float], ...] = option(
        (),
        "TV-L1 override NAME=VALUE (OpenCV names), repeatable.",
        content=True,
        cli={
            "flag": "--flow-param",
            "type": str,
            "multiple": True,
            "default": (),
            "show_default": False,
            "callback": lambda ctx, param, values: parse_flow_params(values),
        },
    )
    bound_px: float = option(20.0, "Flow clip bound in px.", content=True, cli={"flag": "--bound"})
    flow_jpeg_quality: int = option(95, "JPEG quality of the flow x/y images.", content=True)
    rgb_jpeg_quality: int = option(95, "JPEG quality of the RGB frames.", content=True)
    # Which frame pairs get flow and how flow is stored (format.FlowLayout). Added while jobs were running:
    # at their defaults they stay out of the fingerprint, so those jobs still resume.
    flow_stride: int = option(
        1,
        "Flow from frame t to t+K (EPIC-KITCHENS' stride; 1: consecutive frames).",
        content=True,
        fingerprint_default=False,
    )
    flow_every: int = option(
        1,
        "Flow for every M-th frame only: flow j starts at frame j*M (RGB keeps every frame).",
        content=True,
        fingerprint_default=False,
    )
    flow_format: str = option(
        "jpeg",
        "jpeg: quantized to 8 bits (the papers'); png16: 16-bit PNG, scale and offset in the json; npz: exact float32.",
        fmt.FLOW_FORMATS,
        content=True,
        fingerprint_default=False,
    )
    videos_per_task: int = option(32, "The most videos a task (and its shard) holds.", content=True)
    plan: PlanKind = option(
        PlanKind.WORK,
        "work: tasks of equal estimated work, longest first, long videos cut "
        "into ranges over workers; count: --videos-per-task videos each, in order.",
        content=False,
    )
    shard_max_bytes: int = option(
        512 * MIB,
        "Roll over to a new shard past this size.",
        content=False,
        cli={"flag": "--shard-max-mb", "type": int, "default": 512, "callback": lambda ctx, param, mb: mb * MIB},
    )
    seed: int = option(0, "Seed of the class-mixing shuffle.", content=True)
    workers: int = option(
        0,
        "Parallel tasks: worker processes, or Ray workers on a cluster (default: one per core "
        "of this machine, or the cluster's CPUs).",
        content=False,
        cli={"show_default": False},
    )
    executor: str = option(
        "auto",
        "auto: processes on one machine, ray with a cluster or flow actors; ray: Ray "
        "workers (a local Ray, or the cluster of --ray-address); processes: --workers "
        "processes on this machine, no Ray (~10 s less start-up); inline: in this "
        "process (debugging).",
        executor_names,
        content=False,
    )
    ray_address: str | None = option(
        None,
        "Existing Ray cluster: 'auto' or host:port (default: start a local one).",
        content=False,
        cli={"show_default": False},
    )
    max_in_flight: int = option(
        0, "Tasks submitted at once (default 2 x workers).", content=False, cli={"show_default": False}
    )
    threads_per_worker: int = option(
        0,
        "Threads per worker for OpenCV, FFmpeg and the flow backend (default 1: --workers is the cores used).",
        content=False,
        cli={"show_default": False},
    )
    task_memory_mb: int = option(
        0, "Memory Ray reserves per task, MiB (default: none).", content=False, cli={"show_default": False}
    )
    task_retries: int = option(
        3, "Retries of a task whose worker or node died (a bad video is a failed row, never retried).", content=False
    )
    flow_actors: int = option(
        0,
        "Compute flow on N Ray actors (one per GPU, say) shared by the CPU tasks; 0: inside each task.",
        content=False,
    )
    gpus_per_flow_actor: float | None = option(
        None,
        "GPUs each flow actor holds (default: 1 for a CUDA backend, 0 for a CPU one; 0.5: two per GPU).",
        content=False,
        cli={"show_default": False},
    )

    def __post_init__(self) -> None:
        coerce_fields(self)  # enums, tuples and choices (the executor's, the split's, ...)
        Resize(self.resize_mode, self.size_px)  # validates
        checks = [
            (self.workers >= 0, f"workers must be >= 0 (0: one per core), not {self.workers}"),
            (self.flow_stride >= 1, f"flow_stride must be >= 1, not {self.flow_stride}"),
            (self.flow_every >= 1, f"flow_every must be >= 1, not {self.flow_every}"),
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
            (self.flow_actors >= 0, f"flow_actors must be >= 0, not {self.flow_actors}"),
            (
                not (self.flow_actors and self.executor in ("processes", "inline")),
                f"flow actors need --executor ray, not {self.executor}",
            ),
            (
                not (self.ray_address and self.executor == "processes"),
                "--executor processes runs on this machine only: drop --ray-address, or use --executor ray",
            ),
            (
                self.gpus_per_flow_actor is None
                or (
                    self.gpus_per_flow_actor >= 0
                    and (self.gpus_per_flow_actor <= 1 or float(self.gpus_per_flow_actor).is_integer())
                ),  # Ray's rule
                f"gpus_per_flow_actor must be a fraction in [0, 1] or a whole number, not {self.gpus_per_flow_actor}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def video_settings(self, decode_threads: int = 0) -> VideoSettings:
        return VideoSettings(
            Resize(self.resize_mode, self.size_px),
            self.bound_px,
            self.flow_jpeg_quality,
            self.rgb_jpeg_quality,
            self.fps,
            self.max_frames,
            self.video_timeout_s,
            decode_threads,
            self.flow_layout(),
        )

    def flow_layout(self) -> fmt.FlowLayout:
        return fmt.FlowLayout(self.flow_stride, self.flow_every, self.flow_format)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[no-any-return]

    def content_fingerprint(self) -> str:
        return fingerprint(self)
