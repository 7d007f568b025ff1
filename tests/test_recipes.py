"""Every entry of the trainer's registries (recipes, models, losses) resolves, and every recipe's step
turns a batch into features and named loss terms; typed configs refuse bad values when built."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from flowprep.cli_config import config_options  # noqa: E402
from training.config import Crop, EvalConfig, LRSchedule, Precision, TrainConfig  # noqa: E402
from training.losses import LOSSES  # noqa: E402
from training.models import MODELS, create_model  # noqa: E402
from training.recipes import RECIPES, get_recipe  # noqa: E402


@pytest.mark.parametrize("registry", [RECIPES, MODELS, LOSSES], ids=lambda r: r.kind)
def test_every_registry_entry_resolves(registry):
    for name in registry.names():
        assert registry.get(name) is not None
    with pytest.raises(ValueError, match=f"unknown {registry.kind} 'nope'; choose one of: "):
        registry.get("nope")


@pytest.mark.parametrize("name", RECIPES.names())
def test_recipe_step_gives_features_and_named_terms(name):
    from training.checkpoint import IN_CHANNELS
    from training.loops import Features, StepContext
    from training.losses import create_loss

    recipe = get_recipe(name)
    assert recipe.name == name and recipe.modality in recipe.reads and recipe.default_loss in LOSSES
    torch.manual_seed(0)
    model = create_model("resnet3d_tiny", num_classes=3, in_channels=IN_CHANNELS[recipe.modality])
    teacher = create_model("resnet3d_tiny", num_classes=3, in_channels=2).eval() if recipe.needs_teacher else None
    ctx = StepContext(
        Features(model), create_loss(recipe.default_loss), recipe.modality, torch.device("cpu"), "fp32", teacher
    )
    batch = {
        "rgb": torch.rand(4, 3, 4, 16, 16) * 255,
        "flow": torch.randn(4, 2, 4, 16, 16),
        "label": torch.tensor([0, 1, 2, 0]),
    }
    if recipe.views == 2:
        batch["rgb2"] = torch.rand(4, 3, 4, 16, 16) * 255
    features, terms = recipe.step(ctx, batch, batch["label"])
    assert features["logits"].shape == (4, 3)
    assert terms["loss"].dim() == 0 and terms["loss"].requires_grad


def test_configs_hold_typed_values_and_refuse_bad_ones(tmp_path):
    cfg = TrainConfig(
        data="d",
        out="o",
        train_partitions="train, extra",
        model_args='{"paths": ["me"]}',
        precision="fp16",
        lr_schedule="cosine",
        crop="center",
    )
    assert cfg.train_partitions == ("train", "extra") and cfg.model_args == {"paths": ["me"]}
    assert (cfg.precision, cfg.lr_schedule, cfg.crop) == (Precision.FP16, LRSchedule.COSINE, Crop.CENTER)
    assert dataclasses.replace(cfg, val_partitions=[]).val_partitions == ()
    for bad, message in [
        ({"mode": "dreaming"}, "--mode 'dreaming'"),
        ({"precision": "fp8"}, "--precision 'fp8'"),
        ({"loss_args": "alpha=1"}, "--loss-args"),
        ({"model": "nope"}, "unknown model 'nope'"),
        ({"loss": "nope"}, "unknown loss 'nope'"),
        ({"mode": "student"}, "--teacher"),
        ({"data": ""}, "--data is required"),
    ]:
        with pytest.raises(ValueError, match=message):
            TrainConfig(**{"data": "d", "out": "o", **bad})
    with pytest.raises(ValueError, match="--loss-args"):
        TrainConfig(data="d", out="o", loss_args=[1])  # JSON, but not an object of keyword arguments
    assert EvalConfig(data="d", out="o", partitions=["train", "test"]).partitions == ("train", "test")


def test_cli_options_come_from_the_fields_with_their_defaults():
    import click

    @click.command()
    @config_options(TrainConfig)
    def command(**kwargs):
        return TrainConfig(**kwargs)

    cfg = command.main(
        ["--data", "d", "--out", "o", "--val-partitions", "", "--loss-args", '{"alpha": 2}'], standalone_mode=False
    )
    assert cfg == dataclasses.replace(TrainConfig(data="d", out="o"), val_partitions=(), loss_args={"alpha": 2})
