"""Recipes by name: `flowprep-train teacher|student|baseline|twins --preset NAME` sets a paper's model,
module, loss, loss weights, optimiser and schedule; flags given on the command line still override.

One file per paper; each holds a `Preset` whose every value carries its source (paper, section, table),
and docs/training.md's table is `preset_table()` (a test keeps them equal). Papers: /work/shared/papers/
(000/001 IMRS, 002 Dual-action, 003 ACTION-Net, 004 STM + Twins Training); MARS, TSN and TSM are cited
through them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

__all__ = ["PRESETS", "Preset", "get_preset", "preset_fields", "preset_table"]

PRESETS = {  # name -> module of this package holding `PRESET`
    "imrs": "imrs",
    "mars": "mars",
    "dual_action": "dual_action",
    "stm_twins": "stm_twins",
    "action_net": "action_net",
    "tsm": "tsm",
    "tsn": "tsn",
}


@dataclass(frozen=True)
class Preset:
    """`values`: TrainConfig field -> (value, source) for every mode; `distill`: the same for the loss
    fields of the distilling modes (student) or of twins, keyed by mode."""

    name: str
    paper: str
    values: dict[str, tuple[object, str]]
    by_mode: dict[str, dict[str, tuple[object, str]]] = field(default_factory=dict)


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return importlib.import_module(f"{__name__}.{PRESETS[name]}").PRESET


def preset_fields(name: str, mode: str) -> dict[str, object]:
    """The TrainConfig fields preset `name` sets for `mode` (its sources dropped)."""
    preset = get_preset(name)
    chosen = {**preset.values, **preset.by_mode.get(mode, {})}
    return {k: v for k, (v, _) in chosen.items()}


def preset_table() -> str:
    """Markdown: for each preset, every hyper-parameter it sets, its value and its source."""
    rows = ["| preset | mode | field | value | source |", "|---|---|---|---|---|"]
    for name in PRESETS:
        preset = get_preset(name)
        groups = [("all", preset.values), *preset.by_mode.items()]
        for mode, values in groups:
            for key, (value, source) in values.items():
                rows.append(f"| {name} | {mode} | `{key}` | `{value}` | {source} |")
    return "\n".join(rows) + "\n"
