"""IMRS: 3D network with channel excitation and knowledge distillation (Hu et al., Front. Neurorobot. 2023;
papers/001, text also in papers/000). Sections as numbered in the paper."""

from . import Preset

HARA = "IMRS 4.2.2 (after Hara et al. 2018)"
PRESET = Preset(
    "imrs",
    "IMRS (papers/001)",
    values={
        "model": ("resnext3d_101", "IMRS Table 3: 3D-ResNeXt-101, 48.34M parameters"),
        "model_args": ({"attention": "ce"}, "IMRS 4.3.1 / Table 2: a CE module after each of Res2-Res5"),
        "frames": (16, "IMRS 4.2.2: consecutive 16 frames"),
        "crop": ("random", "IMRS 4.2.2: a random 112 x 112 cut"),
        "crop_size": (112, "IMRS 4.2.2"),
        "flip": (True, "IMRS 4.2.2: random horizontal flip (flow x negated)"),
        "lr": (0.1, f"{HARA}: 0.1 from scratch (0.001 when fine-tuning from Kinetics: pass --lr 0.001)"),
        "momentum": (0.9, HARA),
        "weight_decay": (5e-4, HARA),
        "lr_schedule": ("plateau", f"{HARA}: x0.1 when no longer improving for 10 epochs"),
        "lr_factor": (0.1, HARA),
        "lr_patience": (10, HARA),
        "epochs": (80, "IMRS 4.2.2: 80 epochs"),
        "batch_size": (32, "IMRS 4.2.2: batch 32"),
    },
    by_mode={
        "student": {
            "loss": ("imrs", "IMRS 3.3 eq. (8): CE + lambda1 feature distance + lambda2 KL"),
            "loss_args": ({"lambda1": 50.0, "lambda2": 200.0}, "IMRS 4.3.2 / Table 4: lambda1 = 50, lambda2 = 200"),
        }
    },
)
