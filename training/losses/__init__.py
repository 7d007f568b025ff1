"""Loss registry: `create_loss(name, **kwargs)` -> `loss_fn(student, target, teacher=None) -> dict`.

`student` / `teacher` are the `forward_features` dicts of the models ("logits", "pool", "res2".."res5"),
`target` the labels LongTensor (B,). The returned dict holds "loss" (the scalar to backpropagate) and
every named term, unweighted, for logging; `docs/models.md` gives each formula.
Every module in this package is imported on first use, so a new loss is one file whose entry function
(keyword hyper-parameters -> loss_fn) carries `@register_loss`.
"""
from __future__ import annotations

from typing import Callable

import torch

from training.registry import Registry

FeatureDict = dict[str, torch.Tensor]
LossFn = Callable[..., dict[str, torch.Tensor]]

_REGISTRY = Registry("loss", __name__, __path__)
register_loss = _REGISTRY.register  # decorator for entry functions
list_losses = _REGISTRY.names
create_loss = _REGISTRY.create
