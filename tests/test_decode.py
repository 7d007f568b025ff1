"""Decoding: orientation, containers without a frame count, resampling, and every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest

from flowprep.decode import Resize, StreamInfo, VideoError, decode_frames, resample_fps, rotate_upright
from tests.conftest import shared_path

SQUARE_32 = Resize("square", 32)


def decode_all(source, resize=SQUARE_32, **kw):
    info = StreamInfo()
    return list(decode_frames(str(source), resize, info, **kw)), info


def test_rotation_metadata_gives_the_player_orientation():
    frames, info = decode_all(shared_path("videos", "phone_rotated_minus90.mov"), Resize("short", 64))
    assert info.rotation_deg == -90 and info.coded_hw == (320, 568)
    assert len(frames) == 3
    height, width = frames[0].shape[:2]
    assert width == 64 and height == round(568 / 320 * 64 / 2) * 2  # portrait, as a phone player shows it


def test_rotate_upright_turns_counterclockwise_by_the_display_angle():
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 2] = 255  # top-right corner marked
    turned = rotate_upright(image, 90)  # counterclockwise quarter turn: top-right -> top-left
    assert turned.shape[:2] == (3, 2) and turned[0, 0, 0] == 255
    assert rotate_upright(image, -90)[2, 1, 0] == 255  # clockwise: top-right -> bottom-right


def test_container_without_frame_count_is_counted_by_decoding():
    frames, info = decode_all(shared_path("videos", "kinetics_flipping_pancake_noframecount.mkv"))
    assert info.container_frames == 0 and len(frames) == 310
    assert abs(info.measured_fps() - 30) < 0.5 and not info.is_vfr()


def test_fps_resampling_halves_a_constant_rate_clip(write_video, tmp_path):
    path = write_video(tmp_path / "v.avi", frames=10)  # 25 fps
    info = StreamInfo()
    frames = list(resample_fps(decode_frames(str(path), Resize("square", 16), info), info, fps=12.5))
    assert len(frames) == 5


def test_vfr_is_detected_from_timestamps():
    info = StreamInfo(pts_s=[0.0, 0.04, 0.08, 0.2, 0.24])
    assert info.is_vfr()
    assert not StreamInfo(pts_s=[0.0, 0.04, 0.08, 0.12]).is_vfr()


# ---- bad input: each is a VideoError with a named cause ------------------------------------


def make_audio_only(path):
    import av

    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    "kind, cause",
    [
        ("zero_byte", "unreadable container"),
        ("random_bytes", "unreadable container"),
        ("text_named_mp4", "unreadable container"),
        ("audio_only", "no video stream"),
        ("truncated_tail", "truncated"),  # the index survives, the last frames are gone
        ("truncated_half", "unreadable container"),  # FFmpeg cannot even open it
    ],
)
def test_bad_files_raise_named_causes(kind, cause, write_video, tmp_path):
    good = write_video(tmp_path / "good.avi", frames=20, size_px=64)
    path = tmp_path / f"{kind}.avi"
    if kind == "zero_byte":
        path.write_bytes(b"")
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "text_named_mp4":
        path = tmp_path / "notes.mp4"
        path.write_text("this is not a video\n" * 50)
    elif kind == "audio_only":
        path = make_audio_only(tmp_path / "audio.wav")
    elif kind.startswith("truncated"):
        data = good.read_bytes()
        path.write_bytes(data[: int(len(data) * (0.9 if kind == "truncated_tail" else 0.5))])
    with pytest.raises(VideoError) as err:
        decode_all(path)
    assert err.value.cause == cause


def test_right_content_wrong_extension_still_decodes(write_video, tmp_path):
    path = write_video(tmp_path / "v.avi", frames=4)
    renamed = path.rename(tmp_path / "v.mp4")  # an AVI named .mp4: FFmpeg probes the content
    frames, _ = decode_all(renamed)
    assert len(frames) == 4
