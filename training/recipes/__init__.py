"""Training recipes: one registry entry per mode (`flowprep-train teacher | baseline | student | twins`).

A `Recipe` says what a mode reads and how one training step turns a batch into a loss; the loop
(`training.loops.train_one_epoch`) and `training.train.train` know no mode by name. A new mode (what the
next paper needs) is one module with a `Recipe` plus one line in `RECIPES`.

The step contract: `step(ctx, batch, target) -> (features, terms)`, where `ctx` is a
`training.loops.StepContext` (the network, the loss, the device, the frozen teacher if any), `batch` the
loader's dict, `target` the labels already on the device; `features` is the `forward_features` dict of
the trained stream (its first view) and `terms` the loss's dict of named terms ("loss" is backpropagated,
every term is logged).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowprep.registry import Registry

if TYPE_CHECKING:
    from ..config import TrainConfig

RECIPES = Registry(
    "recipe",
    {
        "teacher": "training.recipes.classify:TEACHER",
        "baseline": "training.recipes.classify:BASELINE",
        "student": "training.recipes.student:STUDENT",
        "twins": "training.recipes.twins:TWINS",
    },
)


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str  # one line: the help of its command, `flowprep-train NAME`
    modality: str  # the stream's input ("rgb" or "flow"): what it is validated, tested and fused on
    reads: tuple[str, ...]  # modalities the training loader decodes (a student reads the teacher's flow too)
    default_loss: str  # loss registry name used when --loss is empty
    step: Callable  # (ctx, batch, target) -> (features, terms); see the module docstring
    views: int = 1  # 2: the loader cuts a second crop/flip of each clip (`batch["rgb2"]`)
    needs_teacher: bool = False  # a frozen flow teacher (--teacher) is loaded into ctx.teacher
    advice: Callable[[TrainConfig], str] | None = None  # a warning for a config that is valid but risky


def get_recipe(name: str) -> Recipe:
    """The recipe of mode `name`; an unknown name raises with the valid ones."""
    return RECIPES.get(name)
