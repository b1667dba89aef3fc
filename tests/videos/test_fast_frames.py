"""Frames reached by seeking from keyframes land on their sampled timestamps, and match what decoding
every frame through ffmpeg's fps filter gives."""

import io
import subprocess
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from assets.videos import media
from assets.videos.media import CorruptVideo, NoVideoFrames, _jpeg, extract_frames

RATE = 25
SECONDS = 12
# Frame N shows mod(N, 50) on its left half (luma steps of 4) and N // 50 on its right half (steps of 20).
COUNTER = (
    f"nullsrc=size=320x240:rate={RATE}:duration={SECONDS},format=yuv420p,"
    "geq=lum='if(lt(X,W/2),16+4*mod(N,50),16+20*floor(N/50))':cb=128:cr=128"
)


def _counter(path: Path, gop: int) -> Path:
    """A lossless H.264 mp4 with B-frames, a keyframe exactly every ``gop`` frames, and a tone."""
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", COUNTER,
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={SECONDS}",
            "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", "-bf", "3",
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("counters")
    return {gop: _counter(root / f"gop{gop}.mp4", gop) for gop in (250, 25)}


def _pixels(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(np.float64)


def _frame_number(jpeg: bytes) -> int:
    """The source frame a 224 x 224 crop of the counter clip came from, read off its two halves."""
    grey = _pixels(jpeg)[..., 0] * 219 / 255  # luma above 16
    return round(grey[:, 20:90].mean() / 4) + 50 * round(grey[:, 134:204].mean() / 20)


def _keyframes(path: Path) -> list[int]:
    """Frame numbers of the keyframes, as ffprobe reports them."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=key_frame", "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return [n for n, flag in enumerate(out.split()) if flag.startswith("1")]


def _decode_everything(path: Path, fps: float = 1.0, size: int = 224) -> np.ndarray:
    """Frames as ffmpeg gives them when it decodes every frame and keeps one per output period, through
    the same JPEG encoding."""
    chain = (
        f"setpts=PTS-STARTPTS,fps={fps}:round=up,"
        f"scale={size}:{size}:force_original_aspect_ratio=increase:flags=bicubic,crop={size}:{size}"
    )
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-vf", chain, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"],
        check=True, capture_output=True, timeout=120,
    ).stdout  # fmt: skip
    return np.stack([_pixels(_jpeg(frame, 90)) for frame in np.frombuffer(raw, np.uint8).reshape(-1, size, size, 3)])


def test_the_clips_keep_keyframes_where_asked(clips):
    assert _keyframes(clips[250]) == [0, 250]
    assert _keyframes(clips[25]) == list(range(0, RATE * SECONDS, 25))


@pytest.mark.parametrize("gop", [250, 25])
def test_exact_frames_are_those_on_screen_at_each_timestamp(clips, gop):
    frames = extract_frames(clips[gop])
    assert [t for t, _ in frames] == list(range(SECONDS))
    assert all(abs(_frame_number(jpeg) - RATE * t) <= 1 for t, jpeg in frames)

    offset = extract_frames(clips[gop], start=3.3, duration=5.0, fps=2.0)
    assert [t for t, _ in offset] == pytest.approx([3.3 + k / 2 for k in range(10)])
    assert all(abs(_frame_number(jpeg) - RATE * t) <= 1 for t, jpeg in offset)


@pytest.mark.parametrize("gop", [250, 25])
def test_keyframe_sampling_takes_the_last_keyframe_before_each_timestamp(clips, gop):
    keys = _keyframes(clips[gop])
    frames = extract_frames(clips[gop], sampling="keyframes")
    assert [t for t, _ in frames] == list(range(SECONDS))
    assert [_frame_number(jpeg) for _, jpeg in frames] == [max(k for k in keys if k <= RATE * t) for t, _ in frames]


@pytest.mark.parametrize("gop", [250, 25])
def test_exact_frames_match_decoding_every_frame(clips, gop):
    ours = np.stack([_pixels(jpeg) for _, jpeg in extract_frames(clips[gop])])
    reference = _decode_everything(clips[gop])
    assert ours.shape == reference.shape == (SECONDS, 224, 224, 3)
    assert np.abs(ours - reference).mean() < 2


def test_exact_frames_of_a_detailed_picture_match_decoding_every_frame(tmp_path):
    """testsrc2's moving shapes and colour bars, scaled down from 640 x 360 as downloaded videos are."""
    path = tmp_path / "pattern.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=4",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    ours = np.stack([_pixels(jpeg) for _, jpeg in extract_frames(path, fps=2.0)])
    reference = _decode_everything(path, fps=2.0)
    assert ours.shape == reference.shape == (8, 224, 224, 3)
    assert np.abs(ours - reference).mean() < 2


def test_bad_files_are_named_in_either_sampling(tmp_path, clips):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clips[25].read_bytes()[:2000])
    for sampling in ("exact", "keyframes"):
        with pytest.raises((CorruptVideo, NoVideoFrames)):
            extract_frames(broken, sampling=sampling)
        with pytest.raises(NoVideoFrames, match="no video frames from 20.00 s"):
            extract_frames(clips[25], start=20.0, sampling=sampling)


def test_the_frames_asset_takes_its_sampling_from_config(tmp_path, clips):
    from assets.core.resources import HomeResource
    from assets.core.versions import with_code_versions
    from assets.videos.defs import video_frames, videos
    from storage import shards

    (tmp_path / "manifest.csv").write_text(f"id,path,start\nlong_gop,{clips[250]},0\nbroken,{tmp_path / 'missing.mp4'},0\n")
    home = HomeResource(root=str(tmp_path / "home"))
    numbers = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("video_batches", ["b"])
        for sampling in ("exact", "keyframes"):
            result = dg.materialize(
                with_code_versions([videos, video_frames]), partition_key="b", instance=instance, resources={"home": home},
                run_config={"ops": {
                    "videos": {"config": {"source": str(tmp_path / "manifest.csv")}},
                    "video_frames": {"config": {"frame_sampling": sampling}},
                }},
            )  # fmt: skip
            assert result.success
            rows = shards.read_table(home.home.datasets, "video_frames", "b").to_pylist()
            numbers[sampling] = [_frame_number(row["jpeg"]) for row in rows]
        with pytest.raises(dg.DagsterInvalidConfigError, match="frame_sampling"):
            dg.materialize(
                [video_frames], partition_key="b", instance=instance, resources={"home": home},
                run_config={"ops": {"video_frames": {"config": {"frame_sampling": "nearest"}}}},
            )  # fmt: skip
    assert all(abs(n - RATE * t) <= 1 for t, n in enumerate(numbers["exact"])) and len(numbers["exact"]) == SECONDS
    assert numbers["keyframes"] == [0] * 10 + [250] * 2


def test_a_decoder_stuck_inside_a_call_is_killed_and_the_video_is_corrupt(tmp_path, monkeypatch, make_video):
    """A decoder that never returns between packets (stuck in C) is bounded all the same."""
    clip = make_video(tmp_path / "clip.mp4", 1.0)
    assert len(media.extract_frames(clip, timeout=60)) == 1
    monkeypatch.setattr(media, "_frames", lambda *args: time.sleep(3600))
    with pytest.raises(media.CorruptVideo, match=r"decoding .*clip.mp4 took longer than 2 s and was killed"):
        media.extract_frames(clip, timeout=2)
