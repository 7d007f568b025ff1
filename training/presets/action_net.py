"""ACTION-Net: multipath excitation for action recognition (Wang, She & Smolic, CVPR 2021; papers/003).
Something-Something V2 schedule."""

from . import Preset

PRESET = Preset(
    "action_net",
    "ACTION-Net (papers/003)",
    values={
        "model": ("action_r50", "ACTION-Net 3 / Fig. 3: an ACTION module in every ResNet-50 bottleneck"),
        "frames": (8, "ACTION-Net 4.2: T = 8 segments (TSN sampling)"),
        "crop": ("multiscale_corner", "ACTION-Net 4.2: short side 256, corner cropping and scale-jittering"),
        "crop_size": (224, "ACTION-Net 4.2: resized to 224 x 224"),
        "batch_size": (64, "ACTION-Net 4.2: N = 64 at T = 8 (48 at T = 16)"),
        "lr": (0.01, "ACTION-Net 4.2: start at 0.01 (ImageNet init: pass --pretrained)"),
        "momentum": (0.9, "ACTION-Net 4.2"),
        "weight_decay": (5e-4, "ACTION-Net 4.2"),
        "lr_schedule": ("multistep", "ACTION-Net 4.2 (SSv2): x0.1 at 30, 40, 45 epochs"),
        "lr_factor": (0.1, "ACTION-Net 4.2"),
        "lr_milestones": ((30, 40, 45), "ACTION-Net 4.2 (SSv2)"),
        "epochs": (50, "ACTION-Net 4.2 (SSv2): stop at 50 epochs"),
    },
)
