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

import dataclasses
import json
import logging
from pathlib import Path
from typing import Sequence

import click

from .compare import CompareConfig
from .config import EvalConfig, FuseConfig, TrainConfig
from .demo import DemoConfig
from .optional import missing_message

_CLICK_TYPES = {"int": int, "float": float, "str": str}


def config_options(cls, exclude: tuple[str, ...] = ()):
    """Decorator adding one click option per dataclass field (same name, default, help, choices)."""
    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in exclude:
                continue
            flag = "--" + f.name.replace("_", "-")
            help_text, choices = f.metadata.get("help"), f.metadata.get("choices")
            if f.type in ("bool", bool):
                fn = click.option(f"{flag}/--no-{flag[2:]}", default=f.default, show_default=True, help=help_text)(fn)
            else:
                kind = click.Choice(choices) if choices else _CLICK_TYPES[str(getattr(f.type, "__name__", f.type))]
                fn = click.option(flag, type=kind, default=f.default, show_default=True, help=help_text)(fn)
        return fn
    return decorate


def _print(result: dict) -> None:
    click.echo(json.dumps({k: v for k, v in result.items() if k not in ("confusion", "video_probs", "video_keys")},
                          indent=2, default=str))


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
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command()
@config_options(TrainConfig)
def train(**kwargs) -> dict:
    """Train one stream (--mode teacher | baseline | student | twins)."""
    from .loops import train as run

    result = run(TrainConfig(**kwargs))
    _print(result)
    return result


def _mode_command(mode: str, doc: str):
    @config_options(TrainConfig, exclude=("mode",))
    def command(**kwargs) -> dict:
        from .loops import train as run

        result = run(TrainConfig(mode=mode, **kwargs))
        _print(result)
        return result

    command.__doc__ = doc
    cli.command(name=mode)(command)


_mode_command("teacher", "Train the flow teacher (motion stream) with cross-entropy.")
_mode_command("baseline", "Train the RGB-only baseline with cross-entropy.")
_mode_command("student", "Train the RGB student to imitate a frozen flow teacher (--teacher).")
_mode_command("twins", "Train an RGB stream on two augmented views of each clip (twins loss).")


@cli.command()
@config_options(EvalConfig)
def evaluate(**kwargs) -> dict:
    """Clip- and video-level top-1/top-5 and a confusion matrix of one checkpoint."""
    from .loops import evaluate as run

    result = run(EvalConfig(**kwargs))
    _print(result)
    return result


@cli.command()
@config_options(FuseConfig)
def fuse(**kwargs) -> dict:
    """Fuse two trained streams: score averaging or the attention fusion module (paper 002)."""
    from .loops import fuse as run

    result = run(FuseConfig(**kwargs))
    _print(result)
    return result


@cli.command()
@config_options(DemoConfig)
def demo(**kwargs) -> dict:
    """Extract the `sample` dataset, train teacher / baseline / student, print the comparison table."""
    from .demo import run_demo

    return run_demo(DemoConfig(**kwargs))


@cli.command()
@config_options(CompareConfig)
def compare(**kwargs) -> list:
    """Train + evaluate several registry models (--models a,b:twins) on the same shards: one table, one plot."""
    from .compare import compare as run

    rows = run(CompareConfig(**kwargs))
    click.echo(Path(kwargs["out"], "compare.md").read_text())
    return rows


def main(argv: Sequence[str] | None = None):
    """Console entry point; with `argv` (tests), exceptions propagate and the command's result is returned."""
    if argv is None:
        return cli.main(prog_name="flowprep-train")
    return cli.main(args=list(argv), prog_name="flowprep-train", standalone_mode=False)


if __name__ == "__main__":
    main()
