"""Model registry: `create_model(name, **kwargs)`; one module per family, each entry a decorated function.

Every module in this package is imported on first use, so adding a model is one new file whose entry
functions carry `@register_model`; tests parametrize over `list_models()`.

THE CONTRACT every model follows (the loader, loops and losses rely on it):
- Entry function `fn(num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module`.
- ONE input layout for every model: `x: float32 (B, C, T, H, W)` (C = 3 for RGB, 2 for flow x/y).
  3D nets convolve over T; 2D (TSN-style) nets fold T into the batch internally and average the
  per-segment logits (consensus), so the loader never needs to know which kind it feeds.
- `forward(x) -> logits (B, num_classes)` and `forward_features(x) -> dict` with keys "logits" (B,K),
  "pool" (B,F) (the pooled vector the classifier sees), and the stage outputs "res2".."res5"
  (3D nets: (B,C,T,H,W); 2D nets: (B*T,C,H,W)).
- Attribute `sampling: str`: "consecutive" (3D nets, T consecutive frames) or "segments" (2D nets,
  TSN segment sampling).
- Losses live in `training/losses/` with a registry `create_loss(name, **kw)`; a loss is called
  `loss_fn(student: dict, target: LongTensor (B,), teacher: dict | None = None) -> dict[str, Tensor]`
  (`student`/`teacher` are `forward_features` dicts) returning "loss" (the scalar to backprop) plus
  every named term for logging. Names: "ce", "mars", "imrs", "dual_action", "twins" (the twins loss
  also takes the second view's features as keyword `student2: dict`).
"""
from __future__ import annotations

from training.registry import Registry

_REGISTRY = Registry("model", __name__, __path__)
register_model = _REGISTRY.register  # decorator for entry functions
list_models = _REGISTRY.names
create_model = _REGISTRY.create
