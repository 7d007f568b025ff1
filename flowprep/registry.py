"""The one registry mechanism: a name -> 'module:attribute' table, each module imported when first used.

Datasets, flow backends, models, losses and training recipes are each one `Registry`; adding one is one
module plus one line in its table. Lazy imports keep heavy dependencies (torch, CUDA, numba) out of
processes that never choose them, and tests parametrize over `names()`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any


class Registry:
    def __init__(self, kind: str, entries: dict[str, str]):
        self.kind = kind  # what is registered ('flow backend', 'dataset', ...), for error messages
        for name, target in entries.items():
            _check_target(kind, name, target)
        self._entries = dict(entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def target(self, name: str) -> str:
        """The 'module:attribute' registered as `name`; an unknown name raises with the valid ones."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self._entries)}")
        return self._entries[name]

    def sorted_names(self) -> list[str]:
        return sorted(self._entries)

    def create(self, name: str, /, **kwargs: Any) -> Any:
        """The factory registered as `name` called with `kwargs` (an unknown name raises with the valid ones)."""
        return self.get(name)(**kwargs)

    def get(self, name: str) -> Any:
        """The object registered as `name`, importing its module on first use."""
        module_name, attribute = self.target(name).split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def add(self, name: str, target: str) -> None:
        """Registers `name` (plugins and tests); a name already taken raises."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered as {self._entries[name]}")
        _check_target(self.kind, name, target)
        self._entries[name] = target

    def with_entries(self, entries: dict[str, str]) -> Registry:
        """A copy with `entries` added, this one untouched (a test's registration: monkeypatch the module's
        registry with the copy); a name already taken raises."""
        copy = Registry(self.kind, self._entries)
        for name, target in entries.items():
            copy.add(name, target)
        return copy


def _check_target(kind: str, name: str, target: str) -> None:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{kind} {name!r}: target {target!r} is not 'module:attribute'")
