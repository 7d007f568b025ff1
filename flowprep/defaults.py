"""Where `flowprep extract` looks when --root / --out are not given, so `flowprep extract --dataset hmdb51`
works as written: the dataset under `$FLOWPREP_DATA/<dataset>` (else `./data/<dataset>`), the shards to
`./shards/<dataset>`. Pure functions over strings and an environment mapping; the CLI prints the result."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DATA_ENV = "FLOWPREP_DATA"


@dataclass(frozen=True)
class ResolvedPaths:
    root: str
    out: str
    root_from: str  # '--root', '$FLOWPREP_DATA', './data' or 'generated' (the sample dataset)
    out_from: str  # '--out' or './shards'


def resolve_paths(dataset: str, root: str | None, out: str | None, env: Mapping[str, str]) -> ResolvedPaths:
    out_from = "--out" if out else "./shards"
    out = out or os.path.join("shards", dataset)
    if root:
        return ResolvedPaths(root, out, "--root", out_from)
    if dataset == "sample":  # generated on first use, beside the shards it is extracted to
        generated = os.path.join(out, "_sample_videos") if "://" not in out else "flowprep-sample-videos"
        return ResolvedPaths(generated, out, "generated", out_from)
    if env.get(DATA_ENV):
        return ResolvedPaths(os.path.join(env[DATA_ENV], dataset), out, f"${DATA_ENV}", out_from)
    return ResolvedPaths(os.path.join("data", dataset), out, "./data", out_from)


def missing_root_message(dataset: str, paths: ResolvedPaths, layout: str) -> str | None:
    """One line when a local dataset root does not exist (None when it does, or is an object-store URL)."""
    generated = dataset == "sample"  # made under its root on first use, wherever --root points
    if "://" in paths.root or generated or os.path.isdir(paths.root):
        return None
    hint = "" if paths.root_from == "--root" else f" (pass --root, or set ${DATA_ENV} to the folder holding {dataset}/)"
    return f"dataset root {paths.root} ({paths.root_from}) not found{hint}; {dataset} expects: {layout}"
