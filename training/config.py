"""One frozen, typed config per entry point (train, evaluate, fuse); CLI flags map one to one onto the fields.

Defaults are the papers' recipe (IMRS 4.2.2, Dual-action 4.2, after Hara et al. 2018): SGD, momentum
0.9, weight decay 5e-4, lr 0.1 from scratch (0.001 when fine-tuning from `--pretrained`), x0.1 when
the validation loss has not improved for 10 epochs, batch 32, 80 epochs, 16-frame clips, 112 crops.
A config is checked when it is built (`__post_init__`): one that exists is valid. The resolved config
is written as JSON beside the outputs (`config.json` in `out`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from flowprep.cli_config import StrEnum, coerce_fields, from_dict, to_dict
from flowprep.cli_config import option as _f

from .accel import COMPILE_BACKENDS
from .jpeg import DECODES
from .losses import LOSSES
from .models import MODELS
from .presets import PRESETS
from .recipes import RECIPES, Recipe, get_recipe

__all__ = [
    "DataFields",
    "TestProtocol",
    "TrainConfig",
    "EvalConfig",
    "FuseConfig",
    "Precision",
    "LRSchedule",
    "Crop",
    "FusionMethod",
    "from_dict",
    "to_dict",
    "to_json",
    "write_config",
]


class Precision(StrEnum):
    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class LRSchedule(StrEnum):
    PLATEAU = "plateau"
    COSINE = "cosine"
    CONSTANT = "constant"
    MULTISTEP = "multistep"  # x lr_factor at each of lr_milestones (epochs), as the 2D papers


class Crop(StrEnum):
    RANDOM = "random"
    MULTISCALE_CORNER = "multiscale_corner"
    CENTER = "center"


class FusionMethod(StrEnum):
    AVERAGE = "average"
    ATTENTION = "attention"


@dataclass(frozen=True)
class DataFields:
    """Where clips come from and how they are cut; shared by every entry point."""

    data: str = _f("", "flowprep output folder (local path or s3://...), holding <partition>.shards.txt")
    split: str = _f("1", "official split id whose train/test labels select the videos (json 'splits')")
    num_classes: int = _f(0, "classes; 0 = read from the data's manifest.parquet")
    frames: int = _f(16, "clip length T (consecutive frames for 3D nets, segments for 2D nets)")
    crop_size: int = _f(112, "crop side (px) fed to the network")
    batch_size: int = _f(32, "clips per batch per process")
    workers: int = _f(4, "DataLoader worker processes per process")
    device: str = _f("auto", "auto | cpu | cuda | cuda:N (torchrun sets cuda:LOCAL_RANK)")
    precision: Precision = _f(Precision.AUTO, "auto = bf16 autocast on CUDA when supported, else fp32")
    seed: int = _f(0, "seeds model init and every random choice of the loader")

    def __post_init__(self):
        coerce_fields(self)
        self.check()

    def check(self) -> None:
        """Stops at once on a bad value, naming it (subclasses add their own checks)."""
        if not self.data:
            raise ValueError("--data is required: a flowprep output folder")
        if not getattr(self, "out", "x"):
            raise ValueError("--out is required")


@dataclass(frozen=True)
class TestProtocol:
    """How a video is tested: clips x crops, scores averaged; shared by evaluate, fuse and compare."""

    test_clips: int = _f(
        10,
        "uniform clips per video, 0 = every window of --frames frames sliding by --frames "
        "(3D-ResNets / MARS); video score = mean softmax over clips x crops",
    )
    test_crops: int = _f(
        1,
        "1 = centre, 3 = both ends of the long side + centre (TSN / STM), 5 = corners + centre, "
        "10 = 5 + flips; boxes at the scale the checkpoint was trained on (--crop)",
    )


@dataclass(frozen=True)
class TrainConfig(DataFields):
    mode: str = _f("teacher", "teacher (flow), baseline (RGB, CE), student (RGB, distilled), twins", RECIPES.names)
    preset: str = _f(
        "",
        "a paper's recipe by name (training/presets/, docs/training.md#presets): sets model, "
        "module, loss, weights and schedule; flags given on the command line override it",
        ("", *PRESETS),
    )
    out: str = _f("", "output folder: checkpoints, metrics.jsonl, curves.png, config.json")
    model: str = _f("resnet3d_18", "model registry name (training.models.list_models())")
    model_args: dict = _f(
        {},
        'JSON keyword arguments of the model, e.g. \'{"paths": ["me"]}\' (ACTION '
        'ablation) or \'{"modules": ["cstm"]}\' (STM)',
    )
    loss: str = _f("", "loss registry name; empty = ce for teacher/baseline, mars for student, twins")
    loss_args: dict = _f({}, "JSON keyword arguments of the loss, e.g. '{\"alpha\": 50}'")
    teacher: str = _f("", "student mode: checkpoint (.pt) of a trained flow teacher; frozen in eval mode")
    pretrained: str = _f("", "3D-ResNets/MARS Kinetics checkpoint to fine-tune from (then use --lr 0.001)")
    train_partitions: tuple[str, ...] = _f(("train",), "comma-separated shard partitions to stream for training")
    train_split_name: str = _f("train", "videos whose splits[split] equals this are trained on")
    val_fraction: float = _f(
        0.1,
        "validation held out of the training videos: each video with hash(key) below "
        "this fraction (every class loses the same share, in expectation); data with "
        "a val partition (Kinetics, SSv2) validates on it instead; 0 = no validation",
    )
    val_partitions: tuple[str, ...] = _f(
        (),
        "a real validation set instead (Kinetics, SSv2: val): partitions whose "
        "videos with splits[split] == --val-split-name are validated on",
    )
    val_split_name: str = _f("val", "with --val-partitions: videos whose splits[split] equals this are validated on")
    val_on_test: bool = _f(
        False,
        "validate on the test videos (--val-partitions, default test; splits[split] == "
        "test): best.pt and the LR drops are then chosen on the test set, and its accuracy "
        "is no longer an unbiased estimate (only to reproduce papers that did so)",
    )
    crop: Crop = _f(Crop.RANDOM, "train crop: random | multiscale_corner | center")
    flip: bool = _f(True, "random horizontal flip (negates flow x); off for direction-defined classes")
    epochs: int = _f(80, "epochs (one pass over the selected videos each, unless --epoch-samples)")
    epoch_samples: int = _f(0, "> 0: fixed-length epochs of this many videos, shards drawn with replacement")
    lr: float = _f(0.1, "initial learning rate (0.1 from scratch, 0.001 fine-tuning)")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(5e-4, "SGD weight decay")
    lr_schedule: LRSchedule = _f(
        LRSchedule.PLATEAU,
        "plateau (x factor after patience epochs w/o improvement), "
        "cosine, constant, multistep (x factor at --lr-milestones)",
    )
    lr_factor: float = _f(0.1, "plateau: multiply the lr by this")
    lr_patience: int = _f(10, "plateau: validations without improvement of the validation loss")
    lr_milestones: tuple[int, ...] = _f((), "multistep: epochs after which the lr is multiplied by --lr-factor")
    buffer_size: int = _f(64, "shuffle buffer (videos) per worker")
    val_every: int = _f(
        1,
        "validate every N epochs and after the last (clip level, centre crop, 1 clip per "
        "video); only these epochs step a plateau schedule and choose best.pt",
    )
    log_every: int = _f(20, "write a step line to metrics.jsonl every N steps")
    resume: bool = _f(True, "continue from OUT/last.pt when it exists")
    max_steps: int = _f(0, "> 0: stop each epoch after this many steps (smoke tests)")
    clip_grad_norm: float = _f(
        0.0,
        "> 0: clip the gradients' global L2 norm to this before each step (the TSN/TSM "
        "recipes use 20); Twins Training from scratch needs it: at init its "
        "correlation loss divides by near-zero logit norms",
    )
    precise_bn_batches: int = _f(
        0,
        "> 0: after each epoch, recompute BatchNorm statistics over this many training "
        "batches (precise BN; short runs whose running averages lag the weights)",
    )
    # -- throughput and the staples of large runs (issue 23); every default keeps the steps of a run without them
    decode: str = _f(
        "cpu",
        "cpu: JPEGs decoded in the workers, exact; cpu_reduced: libjpeg DCT scaling when the crop "
        "box is >= 2x the crop size (bounded pixel change); gpu: bytes to the GPU, nvJPEG "
        "(torchvision)",
        DECODES,
    )
    clips_per_video: int = _f(1, "training clips cut from one read of a video (own frames, crop, flip each)")
    lr_base_batch: int = _f(0, "> 0: linear scaling rule, lr = --lr x global batch / this (0: --lr as given)")
    warmup_steps: int = _f(0, "> 0: the lr rises linearly over this many steps (then the schedule applies)")
    decay_norm_bias: bool = _f(
        True, "weight decay on biases and norm layers too; --no-decay-norm-bias: only on weights of 2+ dims"
    )
    label_smoothing: float = _f(0.0, "> 0: cross-entropy against (1 - e) one-hot + e / classes")
    sync_bn: bool = _f(False, "under DDP, BatchNorm statistics over the global batch (SyncBatchNorm)")
    channels_last: bool = _f(False, "model and clips in channels_last_3d memory format (faster 3D convs on GPU)")
    compile: str = _f(
        "", "torch.compile backend: inductor (GPU runs), aot_eager; empty = not compiled", COMPILE_BACKENDS
    )
    checkpoint_every: int = _f(0, "> 0: also write last.pt every N steps; a killed run resumes mid-epoch, exactly")
    tensorboard: bool = _f(False, "write scalars to OUT/tensorboard (needs the tensorboard package)")
    progress: bool = _f(True, "a progress line on rank 0: step, clips/s, ETA of the epoch")

    def check(self) -> None:
        super().check()
        MODELS.target(self.model)  # an unknown name raises, listing the registry's
        if self.loss:
            LOSSES.target(self.loss)
        if self.clip_grad_norm < 0:
            raise ValueError(f"--clip-grad-norm {self.clip_grad_norm}: must be >= 0 (0 = no clipping)")
        if list(self.lr_milestones) != sorted(set(self.lr_milestones)):
            raise ValueError(f"--lr-milestones {self.lr_milestones}: expected increasing epochs")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"--label-smoothing {self.label_smoothing}: expected 0 <= e < 1")
        bad = {
            k: getattr(self, k)
            for k in ("clips_per_video", "lr_base_batch", "warmup_steps", "checkpoint_every")
            if getattr(self, k) < (1 if k == "clips_per_video" else 0)
        }
        if bad:
            raise ValueError(f"bad values {bad}: clips_per_video >= 1, the others >= 0")
        if self.recipe.needs_teacher and not self.teacher:
            raise ValueError(f"--mode {self.mode} needs --teacher CHECKPOINT (a trained flow teacher)")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"--val-fraction {self.val_fraction}: must be in [0, 1)")
        if self.val_every < 1:
            raise ValueError(f"--val-every {self.val_every}: must be >= 1")
        if not self.val_on_test and ("test" in self.val_partitions or self.val_split_name == "test"):
            raise ValueError(
                f"--val-partitions {','.join(self.val_partitions)!r} --val-split-name "
                f"{self.val_split_name!r} validates on the test set: pass --val-on-test to mean it"
            )
        if (self.lr_schedule == LRSchedule.MULTISTEP) != bool(self.lr_milestones):
            raise ValueError(f"--lr-milestones {self.lr_milestones!r} go with --lr-schedule multistep, and only it")
        if self.lr_schedule == LRSchedule.PLATEAU and not self.validates:
            raise ValueError(
                "--lr-schedule plateau needs a validation set (--val-fraction > 0, --val-partitions); "
                "without one use cosine or constant, and last.pt is the result"
            )

    @property
    def validates(self) -> bool:
        return bool(self.val_on_test or self.val_partitions or self.val_fraction > 0)

    def validation(self, data_has_val: bool = False) -> tuple[str, tuple[str, ...], str]:
        """(what, partitions, split name) the per-epoch validation reads: what is "held_out" (the training
        selection, minus the held-out videos for training), "partition" (--val-partitions, or the data's
        own `val` partition when it has one: Kinetics, Something-Something) or "test"."""
        if self.val_on_test:
            return "test", self.val_partitions or ("test",), "test"
        if self.val_partitions:
            return "partition", self.val_partitions, self.val_split_name
        if data_has_val and self.val_fraction > 0:
            return "partition", ("val",), self.val_split_name
        return "held_out", self.train_partitions, self.train_split_name

    @property
    def recipe(self) -> Recipe:
        return get_recipe(self.mode)

    @property
    def modality(self) -> str:
        return self.recipe.modality

    @property
    def loss_name(self) -> str:
        return self.loss or self.recipe.default_loss


@dataclass(frozen=True)
class EvalConfig(DataFields, TestProtocol):
    checkpoint: str = _f("", "checkpoint (.pt) written by `flowprep-train train`")
    out: str = _f("", "output folder: results.json, scores.pt, confusion.png, config.json")
    partitions: tuple[str, ...] = _f(("test",), "comma-separated shard partitions to evaluate")
    split_name: str = _f("test", "videos whose splits[split] equals this are evaluated")


@dataclass(frozen=True)
class FuseConfig(DataFields, TestProtocol):
    checkpoint_a: str = _f("", "first stream, e.g. the RGB student")
    checkpoint_b: str = _f("", "second stream, e.g. the flow teacher")
    method: FusionMethod = _f(
        FusionMethod.AVERAGE, "average (score averaging) or attention (paper 002's fusion module)"
    )
    out: str = _f("", "output folder: results.json, confusion.png, fusion.pt, config.json")
    train_partitions: tuple[str, ...] = _f(("train",), "attention: partitions the fusion module is trained on")
    train_split_name: str = _f("train", "attention: videos the fusion module is trained on")
    partitions: tuple[str, ...] = _f(("test",), "partitions to evaluate")
    split_name: str = _f("test", "videos to evaluate")
    epochs: int = _f(10, "attention: epochs of the fusion module (streams frozen)")
    lr: float = _f(0.01, "attention: SGD learning rate of the fusion module")


def to_json(cfg) -> str:
    return json.dumps({"entry": type(cfg).__name__, **to_dict(cfg)}, indent=2, sort_keys=True)


def write_config(cfg, folder: str | Path) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / "config.json").write_text(to_json(cfg) + "\n")
