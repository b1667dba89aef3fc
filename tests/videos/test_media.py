import io
import subprocess
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assets.core.audio import MediaError, NoAudioStream, TruncatedAudio, UnreadableAudio
from assets.videos.media import (
    CorruptVideo,
    MediaInfo,
    NoVideoFrames,
    VideoError,
    extract_audio,
    extract_frames,
    probe,
)

SPLIT_RED_BLUE = "format=rgb24,geq=r='if(lt({axis},120),255,0)':g=0:b='if(lt({axis},120),0,255)'"


def _ffmpeg(path: Path, *inputs: str, args: tuple[str, ...] = ()) -> Path:
    """A media file written by ffmpeg from its generated (lavfi) sources."""
    sources = [arg for spec in inputs for arg in ("-f", "lavfi", "-i", spec)]
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *sources, *args, str(path)], check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Small videos covering what downloads hold: good ones, odd shapes and broken ones."""
    root = tmp_path_factory.mktemp("media")
    h264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "10")
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(40_000))
    return {
        "clip": _ffmpeg(
            root / "clip.mp4",
            "testsrc=size=320x180:rate=25:duration=3",
            "sine=frequency=440:sample_rate=44100:duration=3",
            args=(*h264, "-c:a", "aac", "-ac", "2", "-shortest"),
        ),
        # Luma 16 + 5 N tells which source frame (N, at 10 fps) a sampled frame came from.
        "counter": _ffmpeg(
            root / "counter.mkv",
            "nullsrc=size=64x48:rate=10:duration=4,format=yuv420p,geq=lum='16+5*N':cb=128:cr=128",
            args=("-c:v", "ffv1"),
        ),
        "wide": _ffmpeg(
            root / "wide.mp4", f"nullsrc=size=320x180:rate=5:duration=2,{SPLIT_RED_BLUE.format(axis='X')}", args=h264
        ),
        "tall": _ffmpeg(
            root / "tall.mp4", f"nullsrc=size=180x320:rate=5:duration=2,{SPLIT_RED_BLUE.format(axis='Y')}", args=h264
        ),
        "silent": _ffmpeg(
            root / "silent.mp4",
            "testsrc=size=64x64:rate=5:duration=2",
            "anullsrc=r=48000:cl=mono",
            args=(*h264, "-c:a", "aac", "-shortest"),
        ),
        "no_audio": _ffmpeg(root / "no_audio.mp4", "testsrc=size=64x64:rate=5:duration=2", args=h264),
        "audio_only": _ffmpeg(root / "audio_only.m4a", "sine=frequency=440:duration=2"),
        "corrupt": corrupt,
    }


def _decode(jpeg: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG" and image.size == (224, 224)
    return np.asarray(image.convert("RGB")).astype(np.int16)


def test_probe_reports_streams_and_shape(media):
    info = probe(media["clip"])
    assert info == MediaInfo(
        duration=pytest.approx(3.0, abs=0.05), has_audio=True, has_video=True, fps=25.0, width=320, height=180
    )
    assert astuple(probe(media["tall"], need_audio=False))[1:] == (False, True, 5.0, 180, 320)
    assert astuple(probe(media["audio_only"], need_video=False))[1:] == (True, False, 0.0, 0, 0)


def test_probe_names_each_kind_of_bad_video(media):
    with pytest.raises(CorruptVideo, match="not a readable video"):
        probe(media["corrupt"])
    with pytest.raises(NoAudioStream, match="no audio stream"):
        probe(media["no_audio"])
    with pytest.raises(NoVideoFrames, match="no video stream"):
        probe(media["audio_only"])
    assert all(issubclass(e, VideoError) for e in (CorruptVideo, NoVideoFrames))
    assert all(issubclass(e, MediaError) and issubclass(e, ValueError) for e in (VideoError, NoAudioStream, TruncatedAudio))


def test_frames_are_one_per_second_at_exact_timestamps(media):
    def source_frames(frames):
        return [round((_decode(jpeg)[..., 0].mean() * 219 / 255) / 5) for _, jpeg in frames]

    whole = extract_frames(media["counter"])
    assert [t for t, _ in whole] == [0.0, 1.0, 2.0, 3.0] and source_frames(whole) == [0, 10, 20, 30]
    clip = extract_frames(media["counter"], start=0.4, duration=2.5)
    assert [t for t, _ in clip] == pytest.approx([0.4, 1.4, 2.4]) and source_frames(clip) == [4, 14, 24]
    past_end = extract_frames(media["counter"], start=2.4, duration=5.0)
    assert [t for t, _ in past_end] == pytest.approx([2.4, 3.4]) and source_frames(past_end) == [24, 34]
    assert len(extract_frames(media["clip"], start=0.0, duration=3.0, fps=2.0)) == 6


@pytest.mark.parametrize("name", ["wide", "tall"])
def test_frames_scale_the_short_side_and_crop_the_centre(media, name):
    """Red up to 120 px along the long side, blue after: scaled by 224/180 and cropped in the centre,
    the edge lands at 120 * 224 / 180 - (320 * 224 / 180 - 224) / 2 = 62 px (a stretch would put it at 84)."""
    frames = extract_frames(media[name], duration=2.0)
    assert len(frames) == 2
    image = _decode(frames[0][1])
    along = image if name == "wide" else image.transpose(1, 0, 2)  # rows, then columns along the long side
    red, blue = np.array([255, 0, 0]), np.array([0, 0, 255])
    assert np.abs(along[:, :56] - red).max() < 40 and np.abs(along[:, 69:] - blue).max() < 40
    edge = np.argmax(along[:, :, 2].mean(axis=0) > 127)
    assert 61 <= edge <= 63


def test_audio_is_16k_mono_of_the_exact_length(media):
    audio = extract_audio(media["clip"], start=0.5, duration=2.0)
    assert audio.dtype == np.float32 and audio.shape == (32_000,)
    peak_hz = np.fft.rfftfreq(len(audio), 1 / 16_000)[np.abs(np.fft.rfft(audio)).argmax()]
    assert abs(peak_hz - 440) < 2
    assert abs(len(extract_audio(media["clip"])) - 48_000) < 0.05 * 16_000
    assert extract_audio(media["clip"], 0.0, 1.0, sample_rate=8_000).shape == (8_000,)
    silence = extract_audio(media["silent"], 0.0, 1.5)
    assert silence.shape == (24_000,) and not silence.any()


def test_extraction_names_each_kind_of_bad_video(media):
    with pytest.raises(NoAudioStream):
        extract_audio(media["no_audio"], 0.0, 1.0)
    with pytest.raises(NoVideoFrames, match="no video stream"):
        extract_frames(media["audio_only"])
    with pytest.raises(NoVideoFrames, match="no video frames from 5.00 s"):
        extract_frames(media["clip"], start=5.0, duration=2.0)
    with pytest.raises(TruncatedAudio, match="not 9.00 s"):
        extract_audio(media["clip"], 1.0, 9.0)
    with pytest.raises(UnreadableAudio, match="not readable audio"):
        extract_audio(media["corrupt"])
    with pytest.raises(CorruptVideo, match="not a readable video"):
        extract_frames(media["corrupt"])
    with pytest.raises(CorruptVideo, match="took longer than"):
        extract_frames(media["clip"], timeout=0.001)
