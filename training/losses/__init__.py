"""Loss registry: `create_loss(name, **kwargs)` -> `loss_fn(student, target, teacher=None) -> dict`.

`student` / `teacher` are the `forward_features` dicts of the models ("logits", "pool", "res2".."res5"),
`target` the labels LongTensor (B,). The returned dict holds "loss" (the scalar to backpropagate) and
every named term, unweighted, for logging; `docs/models.md` gives each formula.
Every module in this package is imported on first use, so a new loss is one file whose entry function
(keyword hyper-parameters -> loss_fn) carries `@register_loss`.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

import torch

FeatureDict = dict[str, torch.Tensor]
LossFn = Callable[..., dict[str, torch.Tensor]]

_REGISTRY: dict[str, Callable[..., LossFn]] = {}
_loaded = False


def register_loss(fn: Callable[..., LossFn]) -> Callable[..., LossFn]:
    """Decorator: registers the entry `fn(**hyper_parameters) -> loss_fn` under its own name."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"loss {fn.__name__!r} registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True


def list_losses() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def create_loss(name: str, **kwargs) -> LossFn:
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)
