"""How far each real clip (and copies of it cut short) decodes from what its container declares.

The numbers behind TRUNCATION_FRAMES in flowprep/decode.py:
    python benchmarks/truncation_margins.py > benchmarks/results/truncation_margins.md
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from flowprep.decode import Resize, StreamInfo, VideoError, decode_frames, expected_duration_s

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
CUTS = (1.0, 0.98, 0.9, 0.4)  # fraction of the file's bytes kept


def measure(path: Path) -> str:
    info = StreamInfo()
    try:
        for _ in decode_frames(str(path), Resize("square", 16), info):
            pass
        verdict = "ok"
    except VideoError as exc:
        verdict = str(exc)
    if not info.pts_s:
        return f"| - | - | - | - | - | - | {verdict} |"
    declared_s = expected_duration_s(info)
    short_s = declared_s - info.decoded_duration_s()
    return (
        f"| {info.declared_duration_s:.3f} | {declared_s:.3f} | {info.decoded_duration_s():.3f} | "
        f"{short_s:+.3f} ({100 * short_s / declared_s:+.2f}%, {short_s / info.frame_duration_s():+.1f} frames) | "
        f"{info.decoded_frames} | {info.container_frames or '-'} | {verdict} |"
    )


def main() -> None:
    print(
        "| clip | kept | header duration s | declared s (max of header, frames/fps, last packet) | decoded s | "
        "short by | frames decoded | frames declared | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for clip in sorted(VIDEOS.iterdir()):
            data = clip.read_bytes()
            for keep in CUTS:
                cut = Path(tmp) / clip.name
                cut.write_bytes(data[: int(len(data) * keep)])
                print(f"| {clip.name} | {keep:.0%} " + measure(cut), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
