"""The job's outputs after the run: the merged manifest and report.json (totals, stages, workers, utilization)."""

from __future__ import annotations

from . import format as fmt
from .manifest import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED
from .storage import join, remove_quietly

REPORT_FILE = "report.json"
STAGES = ("decode", "flow", "encode", "write")


def merge_manifest(
    fs, out: str, other_rows: list[dict], part_paths: list[str], parts_per_fetch: int = 256, rows_per_group: int = 65536
) -> JobReport:
    """Concatenate the task parts (and `other_rows`) into manifest.parquet, streaming: the driver holds
    `parts_per_fetch` parts at a time, never the whole manifest. Returns the report of every row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .manifest import schema, table_from_parquet_bytes
    from .storage import TMP_MARK, atomic_open

    # Temporaries of attempts killed between writing and renaming (no writer is left running now).
    remove_quietly(
        fs,
        [
            p
            for pattern in ("*", f"{fmt.PARTS_DIR}/*")
            for p in fs.glob(join(out, pattern))
            if TMP_MARK in p.rsplit("/", 1)[-1]
        ],
    )
    report = JobReport()
    report.add(other_rows)
    tables = [pa.Table.from_pylist(other_rows, schema=schema())]
    with atomic_open(fs, join(out, fmt.MANIFEST_FILE)) as f, pq.ParquetWriter(f, schema()) as writer:
        for start in range(0, len(part_paths), parts_per_fetch):
            batch = part_paths[start : start + parts_per_fetch]
            # One call for many small files: object stores fetch them concurrently.
            blobs = {path.rsplit("/", 1)[-1]: data for path, data in fs.cat(batch).items()}
            for path in batch:
                name = path.rsplit("/", 1)[-1]
                if name not in blobs:
                    raise RuntimeError(f"{path}: task part missing after the run; re-run the same command")
                try:
                    table = table_from_parquet_bytes(blobs[name], path)
                except ValueError as exc:  # no part means "task not done": re-running redoes that task
                    raise RuntimeError(f"{str(exc).rstrip('.')}; delete it and re-run the same command") from None
                if table.schema != schema():  # a part written before a column existed (shard digests): nulls
                    table = pa.Table.from_pylist(table.to_pylist(), schema=schema())
                report.add(table.to_pylist())
                tables.append(table)
            if sum(t.num_rows for t in tables) >= rows_per_group:
                writer.write_table(pa.concat_tables(tables))
                tables = []
        if tables:
            writer.write_table(pa.concat_tables(tables))
    return report


class JobReport:
    """Totals over manifest rows, added part by part: counters per cause, stage and worker, no rows."""

    def __init__(self):
        from collections import Counter

        self.totals: Counter = Counter()
        self.failures_by_cause: Counter = Counter()
        self.stage_seconds: Counter = Counter()
        self.shards: dict[str, set[str]] = {}  # partition -> shard names (for <partition>.shards.txt)
        self.by_worker: dict[str, Counter] = {}  # 'host:pid' -> videos, frames, busy_seconds

    def add(self, rows: list[dict]) -> None:
        from collections import Counter

        for row in rows:
            self.totals["videos"] += 1
            self.totals[row["status"]] += 1
            if row["status"] == STATUS_FAILED:
                self.failures_by_cause[row["cause"]] += 1
            if row["status"] != STATUS_OK:
                continue
            self.totals["frames"] += row["frames"]
            self.totals["bytes"] += row["bytes"]
            self.shards.setdefault(row["partition"], set()).add(row["shard"])
            busy_s = 0.0
            for stage in STAGES:
                self.stage_seconds[stage] += row[f"seconds_{stage}"]
                busy_s += row[f"seconds_{stage}"]
            worker = self.by_worker.setdefault(row["worker"] or "?", Counter())
            worker.update(videos=1, frames=row["frames"], busy_seconds=busy_s)

    def to_dict(self, wall_s: float, **extra) -> dict:
        ok = self.totals[STATUS_OK]
        per_worker = {
            name: {
                "videos": c["videos"],
                "frames": c["frames"],
                "busy_seconds": round(c["busy_seconds"], 3),
                "frames_per_busy_second": round(c["frames"] / max(c["busy_seconds"], 1e-9), 2),
            }
            for name, c in sorted(self.by_worker.items())
        }
        rates = sorted(w["frames_per_busy_second"] for w in per_worker.values())
        return {
            "videos": self.totals["videos"],
            "ok": ok,
            "failed": self.totals[STATUS_FAILED],
            "skipped": self.totals[STATUS_SKIPPED],
            "failures_by_cause": dict(sorted(self.failures_by_cause.items())),
            "frames": self.totals["frames"],
            "bytes": self.totals["bytes"],
            "stage_seconds": {stage: round(self.stage_seconds[stage], 3) for stage in STAGES},
            "wall_seconds": round(wall_s, 3),
            "videos_per_hour": round(ok / wall_s * 3600, 1) if wall_s > 0 else 0.0,
            "frames_per_second": round(self.totals["frames"] / wall_s, 2) if wall_s > 0 else 0.0,
            **extra,
            # Rows of tasks resumed from an earlier run count here too: their workers are long gone.
            "workers": len(per_worker),
            "frames_per_busy_second_per_worker": {"min": rates[0], "median": rates[len(rates) // 2], "max": rates[-1]}
            if rates
            else {},
            "per_worker": per_worker,
        }


def utilization(jobs: list[dict], slots: int) -> dict:
    """How busy the workers were over this run's jobs (each {'started_at', 'ended_at', 'cpus'}, epoch s).

    `busy_fraction`: CPU-seconds in jobs / (`slots` CPUs x the span from the first job's start to the
    last one's end). `tail_s`: from the last moment every slot was busy to the end (the job's last wave;
    the whole span when the slots were never all busy)."""
    if not jobs:
        return {"busy_fraction": 0.0, "tail_s": 0.0, "span_s": 0.0, "jobs": 0}
    start = min(j["started_at"] for j in jobs)
    end = max(j["ended_at"] for j in jobs)
    span_s = max(end - start, 1e-9)
    busy_cpu_s = sum((j["ended_at"] - j["started_at"]) * j["cpus"] for j in jobs)
    events = sorted(
        [(j["started_at"], j["cpus"]) for j in jobs] + [(j["ended_at"], -j["cpus"]) for j in jobs],
        key=lambda e: (e[0], e[1]),
    )  # at a tie the ending job frees its slot first
    running, last_full = 0, None  # index of the last event after which every slot was busy
    for position, (_, delta) in enumerate(events):
        running += delta
        if running >= slots:
            last_full = position
    # the first slot to free up after that moment starts the tail
    tail_from = start if last_full is None else next(t for t, delta in events[last_full:] if delta < 0)
    return {
        "busy_fraction": round(min(busy_cpu_s / (slots * span_s), 1.0), 4),
        "tail_s": round(end - tail_from, 3),
        "span_s": round(span_s, 3),
        "jobs": len(jobs),
        "slots": slots,
    }
