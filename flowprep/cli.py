"""`flowprep` command line: a thin layer mapping flags one to one onto ExtractConfig and friends."""

from __future__ import annotations

import json
import logging
import sys

import click

from .cli_config import config_options
from .config import ExtractConfig
from .importer import ImportConfig

EXIT_OK, EXIT_ERROR, EXIT_PARTIAL = 0, 1, 3  # 3: the job finished but some videos failed


class _Commands(click.Group):
    """A missing optional package (s3fs for s3:// URLs, ...) ends any command in one line saying what
    to install, not in a traceback."""

    def invoke(self, ctx):
        from .storage import MissingDependency

        try:
            return super().invoke(ctx)
        except MissingDependency as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Commands)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """Video datasets -> RGB + TV-L1 optical-flow WebDataset shards."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@main.command()
@config_options(ExtractConfig)
@click.option("--no-progress", is_flag=True, help="No progress bar (logs only).")
def extract(no_progress: bool, **flags) -> None:
    """Decode, resize, compute TV-L1 flow and write shards + manifest (re-run to resume)."""
    import os

    from .datasets import DATASETS, dataset_layout
    from .defaults import missing_root_message, resolve_paths
    from .runner import fit_local_workers, run_extract

    if flags["dataset"] not in DATASETS:
        raise click.UsageError(f"unknown dataset {flags['dataset']!r}; choose one of: {', '.join(DATASETS)}")
    paths = resolve_paths(flags["dataset"], flags["root"], flags["out"], os.environ)
    missing = missing_root_message(flags["dataset"], paths, dataset_layout(flags["dataset"]))
    if missing:
        raise click.ClickException(missing)
    flags.update(root=paths.root, out=paths.out)
    try:
        cfg = ExtractConfig(**flags)
        fitted = fit_local_workers(cfg)
        workers = f"{fitted.workers}" + (
            " (the default)"
            if not cfg.workers
            else f" (asked {cfg.workers}; a local run uses at most one per core)"
            if fitted.workers != cfg.workers
            else ""
        )
        click.echo(
            f"dataset {cfg.dataset}: root {paths.root} ({paths.root_from}), out {paths.out} ({paths.out_from}), "
            f"workers {workers}",
            err=True,
        )
        summary = run_extract(fitted, show_progress=not no_progress)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # the output's storage failed (disk full, object store down): the job, not a video
        raise click.ClickException(
            f"writing the output failed: {exc}; nothing half-written was published: re-run the same command to resume"
        ) from exc
    click.echo(format_summary(summary))
    sys.exit(EXIT_PARTIAL if summary["failed"] else EXIT_OK)


def format_summary(summary: dict) -> str:
    lines = [
        f"videos: {summary['videos']}  ok: {summary['ok']}  failed: {summary['failed']}  "
        f"skipped: {summary['skipped']}  (tasks resumed from a previous run: {summary['resumed_tasks']})",
        f"frames: {summary['frames']}  bytes: {summary['bytes'] / 2**20:.1f} MiB  "
        f"wall: {summary['wall_seconds']:.1f} s  videos/hour: {summary['videos_per_hour']:.0f}",
        "stage seconds (summed over workers): "
        + "  ".join(f"{k} {v:.1f}" for k, v in summary["stage_seconds"].items()),
    ]
    lines += [f"  failed ({cause}): {n}" for cause, n in sorted(summary["failures_by_cause"].items())]
    used = summary.get("utilization")
    if used and used.get("jobs"):
        lines.append(
            f"workers busy: {used['busy_fraction']:.0%} of {used['slots']} CPU(s) "
            f"over {used['span_s']:.1f} s of {used['jobs']} job(s); "
            f"tail (fewer jobs than CPUs): {used['tail_s']:.1f} s; "
            f"split videos: {summary.get('split_videos', 0)}"
        )
    rates = summary.get("frames_per_busy_second_per_worker")
    if rates:
        lines.append(
            f"worker processes: {summary['workers']}  frames per busy second per process: "
            f"min {rates['min']:.1f}  median {rates['median']:.1f}  max {rates['max']:.1f}  "
            f"(tasks retried: {summary.get('retried_tasks', 0)})"
        )
    return "\n".join(lines)


@main.command()
def datasets() -> None:
    """List the dataset registry with the layout each expects."""
    from .datasets import DATASETS, dataset_layout

    for name in DATASETS:
        click.echo(f"{name:12s} {dataset_layout(name)}")


@main.command()
@click.argument("shard")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per sample.")
def inspect(shard: str, as_json: bool) -> None:
    """Show the samples of one shard."""
    from .verify import inspect_shard

    for line in inspect_shard(shard):
        if as_json:
            click.echo(json.dumps(line))
        else:
            click.echo(
                f"{line['key']:60s} label={line['label']:<4} frames={line['frames']:<5} "
                f"flows={line['flows']:<5} "
                f"{line['size']} fps={line['fps']} backend={line['backend']} flow={line['flow']} "
                f"{line['bytes'] / 2**20:.2f} MiB" + (f"  PROBLEMS: {line['problems']}" if line["problems"] else "")
            )


@main.command()
@click.argument("out")
@click.option("--decode", is_flag=True, help="Also decode every frame and flow (slow).")
@click.option("--quick", is_flag=True, help="Compare shard sizes with the manifest's, without hashing them.")
def verify(out: str, decode: bool, quick: bool) -> None:
    """Check every shard against the manifest (members, counts, size and sha256); non-zero exit on any mismatch."""
    from .verify import verify as run_verify

    problems = run_verify(out, decode_images=decode, quick=quick)
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(f"{'FAILED' if problems else 'OK'}: {len(problems)} problem(s) in {out}")
    sys.exit(EXIT_ERROR if problems else EXIT_OK)


@main.command()
@click.argument("out")
@click.option("--key", required=True, help="Sample key (class/video), see `flowprep inspect`.")
@click.option("-o", "--output", "output_png", required=True, help="PNG file to write.")
@click.option(
    "--frames", default=4, show_default=True, help="How many flows (evenly spaced), each beside its first frame."
)
def preview(out: str, key: str, output_png: str, frames: int) -> None:
    """RGB frames beside their flow (x, y as stored, and colour-wheel) as one PNG."""
    import cv2
    import numpy as np

    from .manifest import read_manifest
    from .storage import filesystem, join
    from .verify import iter_samples
    from .viz import preview_sheet

    fs, out_path = filesystem(out)
    rows = [r for r in read_manifest(fs, out_path) if r["key"] == key and r["status"] == "ok"]
    if not rows:
        raise click.ClickException(f"no extracted video with key {key!r} in {out}/manifest.parquet")
    with fs.open(join(out_path, rows[0]["shard"]), "rb") as f:
        members = next(m for k, m in iter_samples(f) if k == key)
    flows = rows[0]["flows"]
    indices = sorted({int(i) for i in np.linspace(0, flows - 1, min(frames, flows))})
    sheet = preview_sheet(members, indices)
    if not cv2.imwrite(output_png, sheet[:, :, ::-1]):
        raise click.ClickException(f"could not write {output_png}")
    click.echo(f"wrote {output_png} ({sheet.shape[1]}x{sheet.shape[0]}, flows {indices})")


@main.group()
def export() -> None:
    """Write extracted shards in another tool's layout."""


@export.command("mmaction2")
@click.argument("out")
@click.argument("dest")
def export_mmaction2_command(out: str, dest: str) -> None:
    """OUT's shards -> DEST/rawframes/<class>/<video>/{img,flow_x,flow_y}_00001.jpg + MMAction2 lists."""
    from .export import ExportConfig, export_mmaction2

    try:
        export_mmaction2(ExportConfig(out, dest), log=lambda line: click.echo(line, err=True))
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.group("import")
def import_() -> None:
    """Pack data prepared by other tools into flowprep shards, without recomputing it."""


@import_.command("rawframes")
@config_options(ImportConfig, exclude=("split",))
def import_rawframes(**flags) -> None:
    """img_00001.jpg + flow_x/flow_y (MMAction2, denseflow or TSN numbering) -> shards + manifest."""
    from .importer import run_import

    try:
        summary = run_import(ImportConfig(**flags))
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_summary(summary))
    sys.exit(EXIT_PARTIAL if summary["failed"] else EXIT_OK)


if __name__ == "__main__":
    main()
