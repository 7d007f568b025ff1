"""TSN as the STM paper trains it for its Twins Training comparison (papers/004 4.2, 5.6 / Table 11); the
TSN paper itself is not in papers/."""

from . import Preset
from .stm_twins import STM_TRAINING

PRESET = Preset(
    "tsn",
    "TSN (trained as in papers/004)",
    values={
        "model": ("tsn_r50", "STM 5.6 / Table 11 (papers/004): TSN on ResNet-50, 8 frames"),
        **STM_TRAINING,
        "clip_grad_norm": (20.0, "TSN's public README commands (--gd 20, the gradient clip); not in papers/"),
    },
)
