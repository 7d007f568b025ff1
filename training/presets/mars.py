"""MARS: Motion-Augmented RGB Stream (Crasto et al., CVPR 2019). The MARS paper is not in papers/: its
values are those papers 000/001 (IMRS) and 002 (Dual-action) cite and compare with."""

from . import Preset

PRESET = Preset(
    "mars",
    "MARS (cited by papers/001, 002)",
    values={
        "model": ("resnext3d_101", "IMRS Table 5 (papers/001): MARS with 3D-ResNeXt-101, 16 frames"),
        "frames": (16, "IMRS Table 5: MARS 16 frames"),
        "crop": ("multiscale_corner", "MARS's code (3D-ResNets' MultiScaleCornerCrop); not in papers/"),
        "crop_size": (112, "Dual-action 4.2 (papers/002) after [4] = MARS: 112 x 112"),
        "flip": (True, "Dual-action 4.2 after MARS"),
        "lr": (0.1, "Dual-action 4.2 after [12] = Hara et al."),
        "momentum": (0.9, "Dual-action 4.2"),
        "weight_decay": (5e-4, "Dual-action 4.2"),
        "lr_schedule": ("plateau", "IMRS 4.2.2 (after Hara et al., as MARS): x0.1 after 10 epochs w/o improvement"),
        "lr_factor": (0.1, "IMRS 4.2.2"),
        "lr_patience": (10, "IMRS 4.2.2"),
        "epochs": (80, "IMRS 4.2.2 (the 3D-ResNets recipe MARS follows)"),
        "batch_size": (32, "IMRS 4.2.2"),
    },
    by_mode={
        "student": {
            "loss": ("mars", "Dual-action eq. (1) (papers/002): MARS's CE + alpha * feature MSE"),
            "loss_args": ({"alpha": 50.0}, "Dual-action 4.2: alpha = 50 'based on the previous experience [4]' (MARS)"),
        }
    },
)
