"""TSM as the STM paper trains it for its Twins Training comparison (papers/004 4.2, 5.6 / Table 11); the
TSM paper itself is not in papers/."""

from . import Preset
from .stm_twins import STM_TRAINING

PRESET = Preset(
    "tsm",
    "TSM (trained as in papers/004)",
    values={
        "model": ("tsm_r50", "STM 5.6 / Table 11 (papers/004): TSM on ResNet-50, 8 frames"),
        **STM_TRAINING,
        "clip_grad_norm": (20.0, "TSM's public opts.py (--gd 20, the gradient clip); not in papers/"),
    },
)
