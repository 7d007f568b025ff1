"""STM with Twins Training (Wang et al., TPAMI; papers/004). Kinetics / Something-Something schedule."""

from . import Preset

# STM 4.2's training details, which its Twins Training comparison (5.6 / Table 11) also trains TSN and TSM with.
STM_TRAINING = {
    "frames": (8, "STM 4.2: T = 8 sampled frames (16: --frames 16 --batch-size 4)"),
    "crop": ("multiscale_corner", "STM 4.2: short side 256, corner cropping + scale-jittering, resized"),
    "crop_size": (224, "STM 4.2: cropped regions resized to 224 x 224"),
    "flip": (True, "STM 4.2: horizontal flipping (off for direction-defined classes)"),
    "batch_size": (8, "STM 4.2: 8 clips per GPU at T = 8 (8 GPUs)"),
    "lr": (0.01, "STM 4.2: start at 0.01 (UCF-101 / HMDB-51 from Kinetics: 0.001, x0.1 every 15 epochs)"),
    "momentum": (0.9, "STM 4.2"),
    "weight_decay": (5e-4, "STM 4.2"),
    "lr_schedule": ("multistep", "STM 4.2: reduce by 10x at 30, 40, 60 epochs"),
    "lr_factor": (0.1, "STM 4.2"),
    "lr_milestones": ((30, 40, 60), "STM 4.2"),
    "epochs": (70, "STM 4.2: stop at 70 epochs"),
}

PRESET = Preset(
    "stm_twins",
    "STM + Twins Training (papers/004)",
    values={
        "model": ("stm_r50", "STM 3.4 / 4.2: STM blocks in ResNet-50, ImageNet init (pass --pretrained)"),
        **STM_TRAINING,
    },
    by_mode={
        "twins": {
            "loss": ("twins", "STM 3.5 eqs. (9)-(10): CE on both views + lambda * correlation loss"),
            "loss_args": ({"beta": 0.0039, "lam": 0.01}, "STM 4.2: beta = 0.0039 (as Barlow Twins), lambda = 0.01"),
        }
    },
)
