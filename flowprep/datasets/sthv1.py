"""Something-Something V1: JPEG frame folders `<id>/00001.jpg ...` (12 fps) + `something-something-v1-*.csv`."""

from __future__ import annotations

from . import Catalog
from .twentybn import csv_catalog

LAYOUT = (
    "ROOT/<id>/00001.jpg ... (or ROOT/20bn-something-something-v1/<id>/), 12 fps, and "
    "something-something-v1-{labels,train,validation,test}.csv (id;label) in ROOT, its parent or --annotations DIR"
)


def catalog(root: str, annotations: str | None = None) -> Catalog:
    return csv_catalog("sthv1", "something-something-v1", "20bn-something-something-v1", LAYOUT, root, annotations)
