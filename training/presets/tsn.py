"""TSN as the STM paper trains it for its Twins Training comparison (papers/004 4.2, 5.6 / Table 11); the TSN
paper itself is not in papers/."""
from . import Preset

PRESET = Preset("tsn", "TSN (trained as in papers/004)", values={
    "model": ("tsn_r50", "STM 5.6 / Table 11 (papers/004): TSN on ResNet-50, 8 frames"),
    "frames": (8, "STM Table 11: 8 RGB frames"),
    "crop": ("multiscale_corner", "STM 4.2: corner cropping + scale-jittering"),
    "crop_size": (224, "STM 4.2: resized to 224 x 224"),
    "flip": (True, "STM 4.2: horizontal flipping"),
    "batch_size": (8, "STM 4.2: 8 clips per GPU at T = 8"),
    "lr": (0.01, "STM 4.2: start at 0.01"),
    "momentum": (0.9, "STM 4.2"),
    "weight_decay": (5e-4, "STM 4.2"),
    "lr_schedule": ("multistep", "STM 4.2: reduce by 10x at 30, 40, 60 epochs"),
    "lr_factor": (0.1, "STM 4.2"),
    "lr_milestones": ((30, 40, 60), "STM 4.2"),
    "epochs": (70, "STM 4.2: stop at 70 epochs"),
    "clip_grad_norm": (20.0, "TSN's public README commands (--gd 20, the gradient clip); not in papers/"),
})
