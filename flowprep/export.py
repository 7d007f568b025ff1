"""`flowprep export mmaction2 OUT DEST`: shards -> the rawframes layout MMAction2 reads, plus its list files.

    DEST/rawframes/<class>/<video>/img_00001.jpg ...    RGB frame k (1-based: shard frame k-1)
    DEST/rawframes/<class>/<video>/flow_x_00001.jpg ... flow from frame k to frame k+1 (same index as its
    DEST/rawframes/<class>/<video>/flow_y_00001.jpg ... first frame; N frames give N-1 flows)
    DEST/<dataset>_<partition>_split_<s>_rawframes.txt       `frame_dir total_frames label`, total = N (RGB)
    DEST/<dataset>_<partition>_split_<s>_rawframes_flow.txt  the same with total = N-1 (Flow modality)
    DEST/<dataset>_<partition>_split_<s>_videos.txt          `source label` for VideoDataset (the original videos)
    DEST/<dataset>_label_map.txt                             class names in label order
    DEST/export.json                                         what was written (counts per list)

This is MMAction2's RawframeDataset default (`filename_tmpl='img_{:05}.jpg'`, flow `flow_{}_{:05}.jpg`,
`start_index=1`); `frame_dir` is relative to `DEST/rawframes` (their `data_prefix`). Every JPEG is copied
byte for byte from the shard: nothing is decoded or re-encoded. A Flow-modality list needs its own
count, N-1: RawframeDataset reads `flow_x_{k}` for k up to `total_frames`, and there is no N-th flow.
With `--flow-stride K` / `--flow-every M` the flows keep consecutive numbers (flow_x_00001 is flow 0,
from frame 0 to K; flow_x_0000(j+1) starts at frame j*M) and the Flow list counts them (`num_flows`).
Lossless flow (png16, npz) is not exported: MMAction2 reads 8-bit flow JPEGs.
Lists are written for every official split a sample's json names, holding the samples that were
extracted (another split's lists miss the videos the extracted split left out, e.g. HMDB51's unused).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass

from . import format as fmt
from .manifest import STATUS_OK, read_manifest
from .storage import filesystem, join, write_bytes_atomic

RAWFRAMES_DIR = "rawframes"
RGB_TEMPLATE, FLOW_TEMPLATE = "img_{:05d}.jpg", "flow_{}_{:05d}.jpg"  # MMAction2's defaults, 1-based
START_INDEX = 1


@dataclass(frozen=True)
class ExportConfig:
    """`flowprep export mmaction2`: the one config of the export; written to DEST/export.json."""

    out: str  # a flowprep output folder (shards + manifest)
    dest: str  # where the rawframes tree and the lists go


def rawframe_files(members: dict[str, bytes]) -> dict[str, bytes]:
    """A sample's members -> MMAction2 file names (within its frame_dir) and their unchanged bytes."""
    files = {}
    for ext, data in members.items():
        parsed = fmt.parse_frame_member(ext)
        if parsed is None:
            continue
        kind, index = parsed
        if kind == fmt.RGB:
            files[RGB_TEMPLATE.format(index + START_INDEX)] = data
        else:  # flow_x / flow_y: flow index k starts at frame k, so both get the same 1-based number
            files[FLOW_TEMPLATE.format(kind[-1], index + START_INDEX)] = data
    return files


def list_names(dataset: str, partition: str, split: str) -> dict[str, str]:
    base = f"{dataset}_{partition}_split_{split}"
    return {"rgb": f"{base}_rawframes.txt", "flow": f"{base}_rawframes_flow.txt", "videos": f"{base}_videos.txt"}


def export_mmaction2(cfg: ExportConfig, log=print) -> dict:
    """Write the rawframes tree and the lists; returns (and writes) the export report."""
    from .verify import iter_samples

    fs_out, out = filesystem(cfg.out)
    fs_dest, dest = filesystem(cfg.dest)
    with fs_out.open(join(out, fmt.CONFIG_FILE), "rb") as f:
        config = json.load(f)
    dataset, classes = config.get("dataset", "flowprep"), config.get("classes", [])
    rows = [r for r in read_manifest(fs_out, out) if r["status"] == STATUS_OK]
    expected = {r["key"]: r for r in rows}
    lines: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (kind, partition, split) -> lines
    no_video_line, seen = [], set()
    for shard in sorted({r["shard"] for r in rows}):
        with fs_out.open(join(out, shard), "rb") as f:
            for key, members in iter_samples(f):
                if key not in expected:
                    raise RuntimeError(f"{shard}: sample {key} is not in the manifest; run `flowprep verify {cfg.out}`")
                meta = json.loads(members["json"])
                layout = fmt.flow_layout(meta)
                if layout.format != "jpeg":
                    raise RuntimeError(
                        f"{shard}: {key}: flow is stored as {layout.format}; MMAction2 rawframes are "
                        "8-bit JPEGs copied byte for byte: extract with --flow-format jpeg to export"
                    )
                for name, data in rawframe_files(members).items():
                    write_bytes_atomic(fs_dest, join(dest, RAWFRAMES_DIR, key, name), data)
                seen.add(key)
                frames, label = meta["num_frames"], meta["label"]
                for split, partition in sorted(meta.get("splits", {}).items()):
                    lines[("rgb", partition, split)].append(f"{key} {frames} {label}")
                    lines[("flow", partition, split)].append(f"{key} {meta['num_flows']} {label}")
                    if meta.get("input", "video") == "video":
                        lines[("videos", partition, split)].append(f"{meta['source']} {label}")
                    else:
                        no_video_line.append(key)
    missing = sorted(set(expected) - seen)
    if missing:
        raise RuntimeError(
            f"{len(missing)} sample(s) of the manifest not found in their shards, e.g. {missing[0]}; "
            f"run `flowprep verify {cfg.out}`"
        )
    written = {}
    for (kind, partition, split), entries in sorted(lines.items()):
        name = list_names(dataset, partition, split)[kind]
        write_bytes_atomic(fs_dest, join(dest, name), ("\n".join(sorted(entries)) + "\n").encode())
        written[name] = len(entries)
    label_map = f"{dataset}_label_map.txt"
    write_bytes_atomic(fs_dest, join(dest, label_map), "".join(f"{c}\n" for c in classes).encode())
    report = {
        "config": asdict(cfg),
        "samples": len(seen),
        "lists": written,
        "label_map": label_map,
        "rawframes": RAWFRAMES_DIR,
        "frame_sources_without_a_video_line": len(set(no_video_line)),
    }
    write_bytes_atomic(fs_dest, join(dest, "export.json"), json.dumps(report, indent=2).encode())
    log(f"exported {len(seen)} samples to {cfg.dest}/{RAWFRAMES_DIR} and {len(written)} lists")
    if no_video_line:
        log(f"{len(set(no_video_line))} samples came from frame folders: they have no line in the *_videos.txt lists")
    return report
