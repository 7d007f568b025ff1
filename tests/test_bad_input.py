"""Bad input never passes silently: truncated downloads, a fuzzed-input sweep, hung decoders.

Every video either becomes a good sample that agrees with what its container declares, or a failed
manifest row naming the file and the cause; the good videos around it are untouched.
"""

from __future__ import annotations

import io
import json
import random
import threading
from pathlib import Path

from click.testing import CliRunner

from flowprep.cli import EXIT_PARTIAL, main
from flowprep.decode import TRUNCATION_FRAMES, Resize, StreamInfo, decode_frames, incomplete
from tests.conftest import shared_path
from tests.test_extract import FAST_FLOW, REAL_FRAMES, extract, manifest, read_back

ALL_REAL_FRAMES = {**REAL_FRAMES, "sthv2_style_vp9_12fps.webm": 32}
TINY = ["--executor", "inline", "--size", "16", "--threads-per-worker", "1", *FAST_FLOW]


def frames_short(meta: dict) -> float:
    """How many frame durations the decoded video ends before the declared one (negative: after)."""
    return (meta["declared_duration_s"] - meta["decoded_duration_s"]) * meta["fps"]


def test_real_clips_decode_to_their_declared_length():
    """The measurement behind TRUNCATION_FRAMES, as a check: every real clip decodes to today's frame
    count and to within a frame of what its container declares."""
    for name, frames in ALL_REAL_FRAMES.items():
        info = StreamInfo()
        count = sum(1 for _ in decode_frames(str(shared_path("videos", name)), Resize("square", 16), info))
        assert count == frames and info.complete and incomplete(info) is None, name
        assert info.declared_duration_s > 0, name
        assert abs(info.declared_duration_s - info.decoded_duration_s()) <= info.frame_duration_s() + 1e-6, name


def test_truncated_download_is_a_failed_row_naming_its_cause(tmp_path):
    """The issue's case: Matroska cut at 40% of its bytes decodes 118 frames without an error."""
    clip = shared_path("videos", "kinetics_flipping_pancake_noframecount.mkv")
    root = tmp_path / "videos" / "pancake"
    root.mkdir(parents=True)
    data = clip.read_bytes()
    (root / "whole.mkv").write_bytes(data)
    (root / "cut.mkv").write_bytes(data[: int(len(data) * 0.4)])
    out = tmp_path / "out"
    extract("--dataset", "folder", "--root", str(root.parent), "--out", str(out), *TINY, expect=EXIT_PARTIAL)
    rows = {r["source"]: r for r in manifest(out)}
    assert rows["pancake/cut.mkv"]["status"] == "failed" and rows["pancake/cut.mkv"]["cause"] == "truncated"
    assert rows["pancake/cut.mkv"]["error"] == "pancake/cut.mkv: truncated: decoded 3.9 s of 10.3 s (118 frames)"
    (sample,) = read_back(out).values()
    meta = json.loads(sample["json"])
    assert meta["num_frames"] == 310 and meta["declared_duration_s"] == meta["decoded_duration_s"] == 10.333


class StallingFile(io.RawIOBase):
    """A readable file whose reads block after `after` bytes until `release` is set: a network read
    that never returns, or a decoder that spins, as the task sees it (no frame comes)."""

    def __init__(self, path: str, after: int, release: threading.Event):
        self._f, self._after, self._release = open(path, "rb"), after, release

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buffer) -> int:
        if self._f.tell() >= self._after:
            self._release.wait()  # blocks without the GIL, as FFmpeg's own reads and decoders do
            return 0
        data = self._f.read(min(len(buffer), self._after - self._f.tell()))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()


def test_a_hung_video_times_out_and_its_task_goes_on(tmp_path, write_video, monkeypatch):
    import flowprep.core as core
    from flowprep.deadline import abandoned_threads

    root = tmp_path / "videos"
    write_video(root / "a" / "before.avi", frames=4, size_px=32, seed=1)
    write_video(root / "a" / "hangs.avi", frames=12, size_px=64, seed=2)
    write_video(root / "a" / "after.avi", frames=4, size_px=32, seed=3)
    release = threading.Event()
    real_decode = core.decode_frames

    def decode(source, *args, **kwargs):
        if str(source).endswith("hangs.avi"):
            source = StallingFile(str(source), after=(root / "a" / "hangs.avi").stat().st_size // 2, release=release)
        return real_decode(source, *args, **kwargs)

    monkeypatch.setattr(core, "decode_frames", decode)
    out = tmp_path / "out"
    try:
        output = extract(
            "--dataset",
            "folder",
            "--root",
            str(root),
            "--out",
            str(out),
            *TINY,
            "--video-timeout-s",
            "1",
            expect=EXIT_PARTIAL,
        )
        assert abandoned_threads() >= 1  # the stalled reader was left behind, not waited for
    finally:
        release.set()  # lets the abandoned reader return, so no thread outlives the test
    assert "failed (timeout): 1" in output
    rows = {r["source"]: r for r in manifest(out)}
    assert rows["a/hangs.avi"]["status"] == "failed" and rows["a/hangs.avi"]["cause"] == "timeout"
    assert rows["a/hangs.avi"]["error"].startswith("a/hangs.avi: timeout after 1 s (")
    assert rows["a/before.avi"]["status"] == rows["a/after.avi"]["status"] == "ok"
    assert {json.loads(s["json"])["id"] for s in read_back(out).values()} == {"before", "after"}


# ---- the fuzzed-input sweep ------------------------------------------------------------------

RENAMED = {".mp4": ".avi", ".avi": ".mkv", ".mkv": ".mp4", ".mov": ".webm", ".webm": ".mov"}
SHORT_PACKETS = 48  # long real clips are cut (stream copy, no re-encode) to this many frames: CI time
CAUSES = {
    "truncated",
    "frames missing",
    "unreadable container",
    "no video stream",
    "no decoder",
    "decode error",
    "no frames",
    "too few frames",
}


def short_copy(clip: Path, dst: Path) -> Path:
    """`clip` itself, or for a long one its first SHORT_PACKETS video packets remuxed into the same
    container type (video only), a complete file that declares its new length."""
    import av

    if ALL_REAL_FRAMES[clip.name] <= 2 * SHORT_PACKETS:
        dst.write_bytes(clip.read_bytes())
        return dst
    with av.open(str(clip)) as src, av.open(str(dst), "w", format=src.format.name.split(",")[0]) as out:
        stream_in = src.streams.video[0]
        stream_out = out.add_stream_from_template(stream_in)
        muxed = 0
        for packet in src.demux(stream_in):
            if packet.dts is None:
                continue
            if muxed == SHORT_PACKETS:
                break
            packet.stream = stream_out
            out.mux(packet)
            muxed += 1
    return dst


def variants(data: bytes, ext: str, seed: str) -> dict[str, bytes]:
    """Damaged copies of one file: cut short, bytes flipped in the header and the payload, a zeroed
    range, the container under another extension. Deterministic for a given `seed`."""
    rng = random.Random(seed)
    size = len(data)

    def flipped(lo: int, hi: int, count: int = 8) -> bytes:
        damaged = bytearray(data)
        for _ in range(count):
            damaged[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
        return bytes(damaged)

    zeroed = bytearray(data)
    start, width = int(size * 0.6), max(1024, size // 50)
    zeroed[start : start + width] = bytes(min(width, size - start))
    return {
        **{f"cut{int(keep * 100)}{ext}": data[: int(size * keep)] for keep in (0.3, 0.7, 0.95)},
        f"flip_header{ext}": flipped(0, min(512, size)),
        f"flip_payload{ext}": flipped(size // 4, 3 * size // 4),
        f"zeroed{ext}": bytes(zeroed),
        f"renamed{RENAMED[ext]}": data,
    }


def test_fuzzed_inputs_are_good_samples_or_failed_rows_and_leave_the_good_ones_alone(tmp_path):
    videos = shared_path("videos")
    clean, fuzzed = tmp_path / "clean", tmp_path / "fuzzed"
    expected_frames, bad = {}, {}  # source -> frames of the untouched clip it was made from
    for clip in sorted(videos.iterdir()):
        for tree in (clean, fuzzed):
            (tree / clip.stem).mkdir(parents=True)
        original = short_copy(clip, clean / clip.stem / f"original{clip.suffix}")
        (fuzzed / clip.stem / original.name).write_bytes(original.read_bytes())
        frames = ALL_REAL_FRAMES[clip.name] if original.stat().st_size == clip.stat().st_size else SHORT_PACKETS
        expected_frames[f"{clip.stem}/{original.name}"] = frames
        for name, data in variants(original.read_bytes(), clip.suffix, seed=clip.name).items():
            (fuzzed / clip.stem / name).write_bytes(data)
            bad[f"{clip.stem}/{name}"] = frames

    result = CliRunner().invoke(
        main,
        [
            "extract",
            "--no-progress",
            "--dataset",
            "folder",
            "--root",
            str(fuzzed),
            "--out",
            str(tmp_path / "out_fuzzed"),
            *TINY,
            "--videos-per-task",
            "16",
        ],
    )
    assert result.exit_code == EXIT_PARTIAL, result.output
    rows = {r["source"]: r for r in manifest(tmp_path / "out_fuzzed")}
    assert set(rows) == set(bad) | set(expected_frames), "every file is in the manifest exactly once"
    samples = {json.loads(s["json"])["source"]: s for s in read_back(tmp_path / "out_fuzzed").values()}
    assert set(samples) == {source for source, row in rows.items() if row["status"] == "ok"}

    for source, row in rows.items():
        if row["status"] == "failed":
            assert row["cause"] in CAUSES, (source, row["cause"], row["error"])
            assert row["error"].startswith(f"{source}: "), "the error names the file"
            continue
        meta = json.loads(samples[source]["json"])
        # A good sample agrees with its own container: length, and frame count where it declares one.
        assert frames_short(meta) <= TRUNCATION_FRAMES + 1e-3, (source, meta)
        if meta["container_frames"]:
            assert abs(meta["num_frames"] - meta["container_frames"]) <= TRUNCATION_FRAMES, (source, meta)
        assert meta["num_frames"] == row["frames"] == sum(k.startswith("rgb.") for k in samples[source])
        assert meta["num_frames"] <= {**bad, **expected_frames}[source], "more frames than the file had"
    failed = {source for source, row in rows.items() if row["status"] == "failed"}
    assert failed <= set(bad) and len(failed) >= len(bad) // 3, "the damage must be caught, not decoded around"
    assert {rows[s]["cause"] for s in failed} >= {"truncated", "unreadable container"}

    # Every untouched clip is a good sample with today's frame count, byte for byte what a run
    # without the damaged files makes.
    extract("--dataset", "folder", "--root", str(clean), "--out", str(tmp_path / "out_clean"), *TINY)
    clean_samples = {json.loads(s["json"])["source"]: s for s in read_back(tmp_path / "out_clean").values()}
    assert set(clean_samples) == set(expected_frames)
    for source, frames in expected_frames.items():
        assert rows[source]["status"] == "ok" and rows[source]["frames"] == frames, source
        ours = {k: v for k, v in samples[source].items() if not k.startswith("__")}
        theirs = {k: v for k, v in clean_samples[source].items() if not k.startswith("__")}
        assert ours == theirs, f"{source} differs from the run without damaged files"
