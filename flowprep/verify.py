"""`verify` and `inspect`: read shards back and check them against the manifest (no extraction code)."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections import defaultdict

from . import format as fmt
from .manifest import STATUS_OK, read_manifest
from .storage import TMP_MARK, filesystem, join


def iter_samples(fileobj):
    """Yield (key, {ext: bytes}) from a shard, grouping members the way WebDataset does."""
    key, members = None, {}
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for info in tar:
            if not info.isfile():
                continue
            dirname, _, basename = info.name.rpartition("/")
            stem, _, ext = basename.partition(".")
            member_key = f"{dirname}/{stem}" if dirname else stem
            if member_key != key:
                if key is not None:
                    yield key, members
                key, members = member_key, {}
            members[ext] = tar.extractfile(info).read()
    if key is not None:
        yield key, members


def check_sample(key: str, members: dict[str, bytes]) -> tuple[dict, list[str]]:
    """The sample's metadata and a list of problems (missing / extra members, bad counts)."""
    if "json" not in members:
        return {}, [f"{key}: no json member"]
    meta = json.loads(members["json"])
    problems = []
    try:
        layout = fmt.flow_layout(meta)
    except ValueError as exc:
        return meta, [f"{key}: {exc}"]
    expected = set(fmt.expected_members(meta["num_frames"], layout))
    if set(members) != expected:
        missing, extra = sorted(expected - set(members)), sorted(set(members) - expected)
        problems.append(
            f"{key}: members differ from num_frames={meta['num_frames']}: "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, extra {extra[:3]}"
        )
    if meta["num_flows"] != layout.num_flows(meta["num_frames"]):
        problems.append(
            f"{key}: num_flows {meta['num_flows']} != {layout.num_flows(meta['num_frames'])} "
            f"(num_frames {meta['num_frames']}, stride {layout.stride}, every {layout.every})"
        )
    if members.get("cls", b"").decode() != str(meta["label"]):
        problems.append(f"{key}: cls {members.get('cls')!r} != label {meta['label']}")
    return meta, problems


class _Hashing:
    """A read-only file that hashes what is read through it (the tar is read once for members and digest)."""

    def __init__(self, file):
        self.file, self.sha256, self.size = file, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.file.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def finish(self) -> tuple[int, str]:
        """Read what the tar reader left (end-of-archive padding) and return (size, sha256 hex)."""
        while self.read(2**20):
            pass
        return self.size, self.sha256.hexdigest()


def digest_problem(shard: str, expected: tuple[int, str], actual: tuple[int, str]) -> str | None:
    """One line naming the shard whose bytes are not the ones published, or None."""
    if actual == expected:
        return None
    return (
        f"{shard}: not the shard that was published: {actual[0]} bytes, sha256 {actual[1][:16]}..., "
        f"the manifest says {expected[0]} bytes, sha256 {expected[1][:16]}..."
    )


def verify(out: str, decode_images: bool = False, quick: bool = False) -> list[str]:
    """Every problem found in an output folder; empty means shards and manifest agree.

    Each shard's size and sha256 are checked against the manifest's (manifests written before digests
    were recorded have none to check); `quick` compares sizes only, without hashing."""
    fs, out_path = filesystem(out)
    if not fs.exists(join(out_path, fmt.MANIFEST_FILE)):
        return [f"{out}: no {fmt.MANIFEST_FILE} (not a flowprep output folder, or the job never finished)"]
    rows = read_manifest(fs, out_path)
    problems: list[str] = []
    expected_by_shard: dict[str, dict[str, int]] = defaultdict(dict)  # shard -> key -> frames
    digests: dict[str, tuple[int, str]] = {}  # shard -> (bytes, sha256) as published
    for row in rows:
        if row["status"] == STATUS_OK:
            expected_by_shard[row["shard"]][row["key"]] = row["frames"]
            if row.get("shard_sha256"):
                digests[row["shard"]] = (row["shard_bytes"], row["shard_sha256"])
    on_disk = {p.rsplit("/", 1)[-1] for p in fs.ls(out_path, detail=False)}
    stray = sorted(n for n in on_disk if n.endswith(".tar") and n not in expected_by_shard)
    problems += [f"{name}: shard not in the manifest" for name in stray]
    problems += [f"{name}: temporary file left behind" for name in sorted(on_disk) if TMP_MARK in name]
    for shard, expected in sorted(expected_by_shard.items()):
        if shard not in on_disk:
            problems.append(f"{shard}: in the manifest but missing")
            continue
        seen: dict[str, int] = {}
        if quick and shard in digests and fs.size(join(out_path, shard)) != digests[shard][0]:
            problems.append(f"{shard}: {fs.size(join(out_path, shard))} bytes, the manifest says {digests[shard][0]}")
        try:
            with fs.open(join(out_path, shard), "rb") as raw:
                f = _Hashing(raw)
                for key, members in iter_samples(f):
                    meta, sample_problems = check_sample(key, members)
                    problems += [f"{shard}: {p}" for p in sample_problems]
                    if key in seen:
                        problems.append(f"{shard}: {key}: duplicated sample")
                    seen[key] = meta.get("num_frames", -1)
                    if decode_images:
                        problems += [f"{shard}: {p}" for p in undecodable(key, members)]
                if shard in digests and not quick:
                    problems += [p for p in [digest_problem(shard, digests[shard], f.finish())] if p]
        except (tarfile.TarError, OSError, EOFError) as exc:
            problems.append(f"{shard}: unreadable tar: {exc}")
            continue
        for key, frames in expected.items():
            if key not in seen:
                problems.append(f"{shard}: {key}: in the manifest but not in the shard")
            elif seen[key] != frames:
                problems.append(f"{shard}: {key}: {seen[key]} frames in the shard, {frames} in the manifest")
        problems += [f"{shard}: {key}: in the shard but not in the manifest" for key in seen if key not in expected]
    keys = [row["key"] for row in rows if row["status"] == STATUS_OK]
    if len(keys) != len(set(keys)):
        problems.append(f"manifest: {len(keys) - len(set(keys))} video(s) listed ok more than once")
    return problems


def undecodable(key: str, members: dict[str, bytes]) -> list[str]:
    """Frames and flows that do not decode (flows through `format.flow_plane_px`, in any flow format)."""
    import cv2
    import numpy as np

    meta = json.loads(members["json"]) if "json" in members else {}
    bad = []
    for ext, data in members.items():
        parsed = fmt.parse_frame_member(ext)
        if parsed is None:
            continue
        try:
            if parsed[0] != fmt.RGB and meta:
                fmt.flow_plane_px(data, meta)
            elif cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is None:
                raise ValueError("JPEG does not decode")
        except (ValueError, KeyError) as exc:
            bad.append(f"{key}.{ext}: {exc}")
    return bad


def flow_summary(meta: dict) -> str:
    """'jpeg', or 'png16 stride 2 every 3': how a sample's flow was stored and which frames it joins."""
    try:
        layout = fmt.flow_layout(meta)
    except ValueError as exc:
        return f"bad flow layout ({exc})"
    steps = "" if (layout.stride, layout.every) == (1, 1) else f" stride {layout.stride} every {layout.every}"
    return layout.format + steps


def inspect_shard(url: str) -> list[dict]:
    """One line of facts per sample of a shard."""
    fs, path = filesystem(url)
    lines = []
    with fs.open(path, "rb") as f:
        for key, members in iter_samples(f):
            meta, problems = check_sample(key, members)
            lines.append(
                {
                    "key": key,
                    "label": meta.get("label"),
                    "class": meta.get("class"),
                    "frames": meta.get("num_frames"),
                    "flows": meta.get("num_flows"),
                    "size": f"{meta.get('height')}x{meta.get('width')}",
                    "fps": meta.get("fps"),
                    "backend": meta.get("flow", {}).get("backend"),
                    "flow": flow_summary(meta),
                    "bytes": sum(len(v) for v in members.values()),
                    "problems": problems,
                }
            )
    return lines
