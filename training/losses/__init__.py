"""Loss registry: `create_loss(name, **kwargs)` -> `loss_fn(student, target, teacher=None) -> dict`.

`student` / `teacher` are the `forward_features` dicts of the models ("logits", "pool", "res2".."res5"),
`target` the labels LongTensor (B,). The returned dict holds "loss" (the scalar to backpropagate) and
every named term, unweighted, for logging; `docs/models.md` gives each formula.
A loss's module is imported when it is first created, so a new loss is one file with an entry function
(keyword hyper-parameters -> loss_fn) plus one line in `LOSSES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flowprep.registry import Registry

if TYPE_CHECKING:
    import torch

FeatureDict = dict[str, "torch.Tensor"]  # a string: the registry's names need no torch
LossFn = Callable[..., dict[str, "torch.Tensor"]]

LOSSES = Registry(
    "loss",
    {
        "ce": "training.losses.ce:ce",
        "dual_action": "training.losses.dual_action:dual_action",
        "imrs": "training.losses.imrs:imrs",
        "mars": "training.losses.mars:mars",
        "twins": "training.losses.twins:twins",
    },
)


list_losses = LOSSES.sorted_names  # () -> names, sorted
create_loss = (
    LOSSES.create
)  # (name, **kwargs) -> what its entry function builds; unknown names raise with the valid ones
