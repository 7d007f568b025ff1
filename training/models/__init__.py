"""Model registry: `create_model(name, **kwargs)`; one module per family, one table line per entry function.

A model's module is imported when it is first created, so adding a model is one new file plus one line
in `MODELS`; tests parametrize over `list_models()`.

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

from flowprep.registry import Registry

MODELS = Registry(
    "model",
    {
        "action_r50": "training.models.action_net:action_r50",
        "action_tiny": "training.models.action_net:action_tiny",
        "resnet3d_101": "training.models.resnet3d:resnet3d_101",
        "resnet3d_18": "training.models.resnet3d:resnet3d_18",
        "resnet3d_34": "training.models.resnet3d:resnet3d_34",
        "resnet3d_50": "training.models.resnet3d:resnet3d_50",
        "resnet3d_tiny": "training.models.resnet3d:resnet3d_tiny",
        "resnext3d_101": "training.models.resnet3d:resnext3d_101",
        "resnext3d_50": "training.models.resnet3d:resnext3d_50",
        "stm_r50": "training.models.stm:stm_r50",
        "stm_tiny": "training.models.stm:stm_tiny",
        "tsm_r50": "training.models.tsm:tsm_r50",
        "tsm_tiny": "training.models.tsm:tsm_tiny",
        "tsn_r50": "training.models.tsn:tsn_r50",
        "tsn_tiny": "training.models.tsn:tsn_tiny",
    },
)


list_models = MODELS.sorted_names  # () -> names, sorted
create_model = (
    MODELS.create
)  # (name, **kwargs) -> what its entry function builds; unknown names raise with the valid ones
