"""Dual-action Stream: learning and distilling the internal relationship of motion features (Lu et al.;
papers/002)."""

from . import Preset

PRESET = Preset(
    "dual_action",
    "Dual-action (papers/002)",
    values={
        "model": ("resnet3d_101", "Dual-action 4.2: 3D ResNet-101 backbone for both streams"),
        "frames": (16, "Dual-action 4.2: the 16f-clip setting (64f-clip: --frames 64)"),
        "crop": ("random", "Dual-action 4.2: a random clip cropped to 112 x 112"),
        "crop_size": (112, "Dual-action 4.2"),
        "flip": (True, "Dual-action 4.2: random horizontal flipping"),
        "lr": (0.1, "Dual-action 4.2: initial learning rate 0.1"),
        "momentum": (0.9, "Dual-action 4.2"),
        "weight_decay": (5e-4, "Dual-action 4.2"),
        "lr_schedule": ("plateau", "not given by 002 ('similar to [12]' = Hara et al.): IMRS 4.2.2's plateau"),
        "lr_factor": (0.1, "IMRS 4.2.2 (Hara et al.)"),
        "lr_patience": (10, "IMRS 4.2.2 (Hara et al.)"),
        "epochs": (80, "not given by 002: IMRS 4.2.2 (Hara et al.)"),
        "batch_size": (32, "not given by 002: IMRS 4.2.2 (Hara et al.)"),
    },
    by_mode={
        "student": {
            "loss": ("dual_action", "Dual-action eqs. (2)-(4): CE + alpha (multi-level MAE + Gram)"),
            "loss_args": (
                {"alpha": 50.0, "gram_weight": 1.0},
                "Dual-action 4.2: alpha = 50; eq. (4): MAE and Gram "
                "weighted alike (gram_weight 0 = the Table 2 ablation without L_G)",
            ),
        }
    },
)
