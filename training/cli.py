"""`flowprep-train`: train / evaluate / fuse / demo. Every flag is a field of the command's config.

    flowprep-train teacher  --data DIR --out runs/teacher            # flow stream, CE
    flowprep-train baseline --data DIR --out runs/rgb                # RGB stream, CE
    flowprep-train student  --data DIR --out runs/student --teacher runs/teacher/best.pt --loss mars
    flowprep-train evaluate --data DIR --checkpoint runs/student/best.pt --out runs/student/eval
    flowprep-train fuse     --data DIR --checkpoint-a ... --checkpoint-b ... --method attention --out ...
    flowprep-train demo     --out /tmp/demo                          # the CPU demo on the sample dataset
    flowprep-train compare  --data DIR --out runs/cmp --models tsn_r50,stm_r50:twins  # one table, one plot

Multi-GPU / multi-node: `torchrun --nproc-per-node 8 -m training.cli teacher ...` (DDP from env vars).
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import click
from click.core import ParameterSource

from flowprep.cli_config import config_options

from .compare import CompareConfig
from .config import EvalConfig, FuseConfig, TrainConfig
from .demo import DemoConfig
from .optional import missing_message
from .presets import preset_fields
from .recipes import RECIPES, get_recipe


def process_settings() -> None:
    """The process-wide switches, made once here at the entry point, never inside the library."""
    import torch

    torch.backends.cudnn.benchmark = True  # fixed clip shapes: let cuDNN pick the fastest kernels


def _print(result: dict, cfg) -> None:
    shown = {k: v for k, v in result.items() if k not in ("confusion", "video_probs", "video_keys", "per_class_top1")}
    if "tested" in shown:  # every key is in results.json; the terminal gets their number
        shown["tested"] = {k: v for k, v in shown["tested"].items() if k != "videos"}
    click.echo(json.dumps(shown, indent=2, default=str))


def _print_table(rows: list, cfg) -> None:
    click.echo(Path(cfg.out, "compare.md").read_text())


class _Commands(click.Group):
    """A missing optional dependency (torch, matplotlib, s3fs) ends a command in one line naming
    what to install, not in a traceback from deep inside the import."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ImportError as exc:
            message = missing_message(exc, f"flowprep-train {ctx.invoked_subcommand or ''}".strip())
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=_Commands)
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
def cli(verbose: bool) -> None:
    """Train flow teachers and distilled RGB students on flowprep shards."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _command(name: str, cls, target: str, doc: str, show: Callable | None = _print, **fixed) -> None:
    """Adds `flowprep-train NAME`: one flag per field of the config `cls` (but the `fixed` ones); it builds
    the config, then runs `target` ('module:function' of this package, imported only when run)."""

    @config_options(cls, exclude=tuple(fixed))
    def command(**kwargs):
        if kwargs.get("preset"):  # the paper's values for every field the command line left at its default
            source = click.get_current_context().get_parameter_source
            given = {k for k in kwargs if source(k) not in (ParameterSource.DEFAULT, None)}
            chosen = preset_fields(kwargs["preset"], fixed.get("mode") or kwargs.get("mode", ""))
            kwargs.update({k: v for k, v in chosen.items() if k not in given and k in kwargs})
        cfg = cls(**fixed, **kwargs)
        module, _, function = target.partition(":")
        run = getattr(importlib.import_module(module, __package__), function)
        process_settings()
        result = run(cfg)
        if show is not None:
            show(result, cfg)
        return result

    command.__doc__ = doc
    cli.command(name=name)(command)


_command("train", TrainConfig, ".train:train", "Train one stream (--mode teacher | baseline | student | twins).")
for _name in RECIPES.names():  # one command per recipe
    _command(_name, TrainConfig, ".train:train", get_recipe(_name).summary, mode=_name)
_command(
    "evaluate",
    EvalConfig,
    ".evaluate:evaluate_checkpoint",
    "Clip- and video-level top-1/top-5 and a confusion matrix of one checkpoint.",
)
_command(
    "fuse",
    FuseConfig,
    ".fuse:fuse",
    "Fuse two trained streams: score averaging or the attention fusion module (paper 002).",
)
_command(
    "demo",
    DemoConfig,
    ".demo:run_demo",  # prints its table itself
    "Extract the `sample` dataset, train teacher / baseline / student, print the comparison table.",
    show=None,
)
_command(
    "compare",
    CompareConfig,
    ".compare:compare",
    "Train + evaluate several registry models (--models a,b:twins) on the same shards: one table, one plot.",
    show=_print_table,
)


def main(argv: Sequence[str] | None = None):
    """Console entry point; with `argv` (tests), exceptions propagate and the command's result is returned."""
    if argv is None:
        return cli.main(prog_name="flowprep-train")
    return cli.main(args=list(argv), prog_name="flowprep-train", standalone_mode=False)


if __name__ == "__main__":
    main()
