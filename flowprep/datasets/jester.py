"""Jester: JPEG frame folders `<id>/00001.jpg ...` (12 fps) + `jester-v1-{labels,train,validation,test}.csv`."""

from __future__ import annotations

from . import Catalog
from .twentybn import csv_catalog

LAYOUT = (
    "ROOT/<id>/00001.jpg ... (or ROOT/20bn-jester-v1/<id>/), 12 fps, and "
    "jester-v1-{labels,train,validation,test}.csv (id;label) in ROOT, its parent or --annotations DIR"
)


def catalog(root: str, annotations: str | None = None) -> Catalog:
    return csv_catalog("jester", "jester-v1", "20bn-jester-v1", LAYOUT, root, annotations)
