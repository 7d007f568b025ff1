"""Recipes by name: every preset builds a valid config in every mode it serves, flags override it, each
value has a source, and docs/training.md shows exactly the presets' table."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from training import train as train_module  # noqa: E402
from training.cli import main  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.losses import create_loss  # noqa: E402
from training.presets import PRESETS, get_preset, preset_fields, preset_table  # noqa: E402

MODES = ("teacher", "baseline", "student", "twins")


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_a_valid_config_with_sources(name):
    preset = get_preset(name)
    assert all(source.strip() for group in (preset.values, *preset.by_mode.values()) for _, source in group.values())
    for mode in MODES:
        fields = preset_fields(name, mode)
        cfg = TrainConfig(data="d", out="o", mode=mode, teacher="t.pt", **fields)
        assert all(getattr(cfg, k) == (tuple(v) if isinstance(v, tuple) else v) for k, v in fields.items())
        create_loss(cfg.loss_name, **cfg.loss_args)  # the loss accepts the preset's weights


def test_flags_on_the_command_line_override_the_preset(monkeypatch):
    seen = {}
    monkeypatch.setattr(train_module, "train", lambda cfg: seen.setdefault("cfg", cfg) and {})
    main(
        [
            "student",
            "--data",
            "d",
            "--out",
            "o",
            "--teacher",
            "t.pt",
            "--preset",
            "imrs",
            "--lr",
            "0.001",
            "--batch-size",
            "32",
        ]
    )
    cfg = seen["cfg"]
    assert cfg.lr == 0.001  # given: kept, although the preset says 0.1
    assert (cfg.model, cfg.model_args, cfg.loss, cfg.loss_args) == (
        "resnext3d_101",
        {"attention": "ce"},
        "imrs",
        {"lambda1": 50.0, "lambda2": 200.0},
    )
    seen.clear()
    main(["twins", "--data", "d", "--out", "o", "--preset", "stm_twins"])
    assert (seen["cfg"].lr_schedule, seen["cfg"].lr_milestones, seen["cfg"].loss_args) == (
        "multistep",
        (30, 40, 60),
        {"beta": 0.0039, "lam": 0.01},
    )
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        preset_fields("nope", "student")


def test_docs_table_is_the_presets_table():
    assert preset_table() in (Path(__file__).parents[1] / "docs" / "training.md").read_text()
