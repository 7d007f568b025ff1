"""A name -> entry-function registry filled by a decorator, one per package (models, losses).

Every module of the package is imported on first use, so a new entry is one new file whose entry
function carries the package's decorator; tests parametrize over `names()`.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable


class Registry:
    def __init__(self, kind: str, package: str, package_path: list[str]):
        self.kind, self._package, self._path = kind, package, package_path
        self._entries: dict[str, Callable] = {}
        self._loaded = False

    def register(self, fn: Callable) -> Callable:
        """Decorator: registers `fn` under its own name."""
        if fn.__name__ in self._entries:
            raise ValueError(f"{self.kind} {fn.__name__!r} registered twice")
        self._entries[fn.__name__] = fn
        return fn

    def _load_all(self) -> None:
        if not self._loaded:
            for info in pkgutil.iter_modules(self._path):
                importlib.import_module(f"{self._package}.{info.name}")
            self._loaded = True

    def names(self) -> list[str]:
        self._load_all()
        return sorted(self._entries)

    def create(self, name: str, **kwargs):
        self._load_all()
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self._entries))}")
        return self._entries[name](**kwargs)
