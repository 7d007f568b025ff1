"""The Parquet manifest: one row per video of the catalog, saying what happened to it.

Each task writes its rows as `_parts/<partition>-<task>.parquet` AFTER its shards are published, so
the presence of a part marks the task done (resume skips it). The final `manifest.parquet` is the
concatenation of the parts plus rows for the videos no task handled (missing, unsplit, unused).
"""

from __future__ import annotations

import io

from . import format as fmt
from .storage import join, write_bytes_atomic

STATUS_OK, STATUS_FAILED, STATUS_SKIPPED = "ok", "failed", "skipped"

COLUMNS = {  # name -> pyarrow type name
    "key": "string",
    "video_id": "string",
    "class_name": "string",
    "label": "int32",
    "source": "string",
    "partition": "string",
    "status": "string",
    "cause": "string",
    "error": "string",
    "shard": "string",
    "task": "int32",
    "frames": "int32",
    "flows": "int32",
    "bytes": "int64",
    "seconds_decode": "float32",
    "seconds_flow": "float32",
    "seconds_encode": "float32",
    "seconds_write": "float32",
    "worker": "string",
    # the row's shard as published, repeated on each of its rows: `verify` proves a copy with them
    "shard_bytes": "int64",
    "shard_sha256": "string",
}


def empty_row() -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(frames=0, flows=0, bytes=0, task=-1, cause="", error="", shard="", shard_bytes=0, shard_sha256="")
    for name in COLUMNS:
        if name.startswith("seconds_"):
            row[name] = 0.0
    return row


def schema():
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMNS.items()])


def rows_to_parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=schema())
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def add_shard_digests(rows: list[dict], digests: dict[str, tuple[int, str]]) -> None:
    """Each row whose shard is in `digests` (ShardWriter.digests: name -> (bytes, sha256)) gets them."""
    for row in rows:
        if row.get("shard") in digests:
            row["shard_bytes"], row["shard_sha256"] = digests[row["shard"]]


def part_path(out_dir: str, partition: str, task_index: int) -> str:
    return join(out_dir, fmt.PARTS_DIR, f"{partition}-{task_index:05d}.parquet")


def write_part(fs, out_dir: str, partition: str, task_index: int, rows: list[dict]) -> None:
    write_bytes_atomic(fs, part_path(out_dir, partition, task_index), rows_to_parquet_bytes(rows))


def done_parts(fs, out_dir: str) -> set[str]:
    """Names ('train-00012.parquet') of the task parts already published."""
    parts_dir = join(out_dir, fmt.PARTS_DIR)
    if not fs.exists(parts_dir):
        return set()
    return {p.rsplit("/", 1)[-1] for p in fs.ls(parts_dir, detail=False) if p.endswith(".parquet")}


def table_from_parquet_bytes(data: bytes, source: str, columns: list[str] | None = None):
    """A pyarrow Table from one Parquet file's bytes, read on the calling thread.

    Neither `pq.read_table(file_object)` nor a threaded read: both leave Arrow threads that can still be
    alive when the interpreter exits, and the process then aborts (SIGABRT, "terminate called without
    an active exception") after its job succeeded (apache/arrow#33975, #34314). Measured here in
    one-read scripts: read_table 17 aborts in 40, ParquetFile with threads 4 in 650, this 0 in 1,350.
    Manifests are small: one thread loses nothing. `source` (the file's path or URL) names the file in
    the error when the bytes are not Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(pa.BufferReader(data)).read(columns=columns, use_threads=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{source}: not a readable Parquet file ({len(data)} bytes): {exc}") from None


def read_rows(fs, path: str) -> list[dict]:
    with fs.open(path, "rb") as f:
        return table_from_parquet_bytes(f.read(), path).to_pylist()


def read_manifest(fs, out_dir: str) -> list[dict]:
    return read_rows(fs, join(out_dir, fmt.MANIFEST_FILE))
