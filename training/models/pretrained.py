"""Load Kinetics-pretrained weights saved by 3D-ResNets-PyTorch / MARS into a `ResNet3D`.

Those checkpoints are `torch.save({'arch', 'epoch', 'state_dict', 'optimizer'})` of an
`nn.DataParallel` model, so every key starts with `module.`. Loading maps the keys and adapts:
- conv1, when the input channels differ (2-channel flow from an RGB checkpoint): the kernel is
  averaged over the checkpoint's input channels and repeated for each of the model's
  (the cross-modality initialisation of TSN, Wang et al. 2016); no rescaling, since flow normalised
  as `q - 127.5` spans about the same range as mean-subtracted RGB.
- fc, when the class count differs (Kinetics 400 -> HMDB 51): left at the model's fresh init.
- the CE / SE modules, absent from those checkpoints: left at their fresh init.
Anything else missing, unexpected or of another shape is an error naming the keys.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

_FRESH_PREFIXES = ("excite.",)  # modules the 3D-ResNets layout does not have


def adapt_conv1_weight(weight_oc_ic_t_h_w: torch.Tensor, in_channels: int) -> torch.Tensor:
    """(O, C_ckpt, t, h, w) -> (O, in_channels, t, h, w): mean over C_ckpt, repeated in_channels times."""
    mean = weight_oc_ic_t_h_w.mean(dim=1, keepdim=True)
    return mean.repeat(1, in_channels, *([1] * (weight_oc_ic_t_h_w.dim() - 2))).contiguous()


def read_3dresnets_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's `state_dict` (or the file itself if it is one) with `module.` stripped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a 3D-ResNets checkpoint (a dict with a 'state_dict' of tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_3dresnets_checkpoint(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load `path` into `model` in place; returns {'adapted': [...], 'fresh': [...]} key lists."""
    state = read_3dresnets_state_dict(path)
    own = model.state_dict()
    adapted, fresh = [], []
    conv1 = state.get("conv1.weight")
    if conv1 is not None and "conv1.weight" in own and conv1.shape[1] != own["conv1.weight"].shape[1]:
        state["conv1.weight"] = adapt_conv1_weight(conv1, own["conv1.weight"].shape[1])
        adapted.append("conv1.weight")
    for key in ("fc.weight", "fc.bias"):
        if key in state and key in own and state[key].shape != own[key].shape:
            del state[key]  # another class count: the head is trained anew
            fresh.append(key)
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(state) & set(own) if state[k].shape != own[k].shape)
    # BN's num_batches_tracked postdates the public 3D-ResNets checkpoints (PyTorch 0.3)
    missing = sorted(
        k
        for k in set(own) - set(state)
        if not k.endswith("num_batches_tracked") and k not in fresh and not k.startswith(_FRESH_PREFIXES)
    )
    if unexpected or mismatched or missing:
        shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in mismatched]
        raise ValueError(
            f"{path} does not fit {type(model).__name__} (wrong depth, family or shortcut type?): "
            f"unexpected keys {unexpected[:8]}, missing keys {missing[:8]}, shape mismatches {shapes[:8]}"
        )
    model.load_state_dict(state, strict=False)
    fresh += sorted(k for k in own if k.startswith(_FRESH_PREFIXES))
    return {"adapted": adapted, "fresh": fresh}
