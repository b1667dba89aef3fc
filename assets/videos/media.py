"""What a video holds, and its 16 kHz mono audio and 224 x 224 JPEG frames, through ffmpeg.

Frames follow the CLIP preprocessing CLIPSep uses: the short side scaled (bicubic) to 224 and a
centre 224 x 224 crop, so image embeddings see the same pixels at training and inference time.
ffmpeg decodes, resamples, scales and crops; it writes raw RGB to a pipe that numpy splits into
frames of a known size, and PIL encodes each JPEG (libjpeg-turbo, about 0.3 ms a frame). Decoding
dominates, so this is as fast as letting ffmpeg write MJPEG (about 1 s either way for the 60
frames of a 60 s 640 x 360 video), needs no splitting of a JPEG stream on markers, and keeps
``quality`` on PIL's 1-95 scale. Audio goes through the one decode in ``assets.core.audio``. Bad
files raise ``MediaError`` subclasses, whose type names go into reject rows.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np
from PIL import Image

from assets.core.audio import MediaError, NoAudioStream, decode_audio, last_line

SAMPLE_RATE = 16_000
FRAME_RATE = 1.0
FRAME_SIZE = 224


class VideoError(MediaError):
    """A video that cannot become frames; the type name goes into the reject row."""


class CorruptVideo(VideoError):
    pass


class NoVideoFrames(VideoError):
    pass


@dataclass(frozen=True)
class MediaInfo:
    """Container duration in seconds; fps, width and height are 0 without a video stream."""

    duration: float
    has_audio: bool
    has_video: bool
    fps: float
    width: int
    height: int


def _run(command: list[str], path: str | Path, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, check=False, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise CorruptVideo(f"{command[0]} took longer than {timeout:.0f} s on {path}") from exc


def _rate(text: str) -> float:
    """ffprobe's frame rate fraction ("30000/1001"; "0/0" when unknown) as a number."""
    num, _, den = text.partition("/")
    return float(num) / float(den or 1) if float(den or 1) else 0.0


def probe(path: str | Path, need_audio: bool = True, need_video: bool = True, timeout: float = 60.0) -> MediaInfo:
    """Streams and duration of a video file, refusing what cannot feed audio-visual training.

    An unreadable container raises CorruptVideo; a missing audio stream NoAudioStream and a missing
    video stream NoVideoFrames, unless not needed. Cover art (an attached picture) is not video.
    """
    command = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
    done = _run(command, path, timeout)
    if done.returncode != 0:
        raise CorruptVideo(f"{path} is not a readable video: {last_line(done.stderr)}")
    found = json.loads(done.stdout)
    streams = found.get("streams", [])
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    video = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    if need_audio and not audio:
        raise NoAudioStream(f"{path} has no audio stream")
    if need_video and not video:
        raise NoVideoFrames(f"{path} has no video stream")
    durations = [found.get("format", {}).get("duration"), *(s.get("duration") for s in streams)]
    duration = next((float(d) for d in durations if d not in (None, "N/A")), 0.0)
    first = video[0] if video else {}
    return MediaInfo(
        duration=duration,
        has_audio=bool(audio),
        has_video=bool(video),
        fps=_rate(first.get("avg_frame_rate", "0/0")),
        width=int(first.get("width", 0)),
        height=int(first.get("height", 0)),
    )


def _input(path: str | Path, start: float, duration: float | None) -> ffmpeg.nodes.FilterableStream:
    return ffmpeg.input(str(path), ss=start) if duration is None else ffmpeg.input(str(path), ss=start, t=duration)


def _decode(stream: ffmpeg.nodes.OutputStream, path: str | Path, timeout: float, missing: VideoError) -> bytes:
    """Run one ffmpeg command to a pipe; ``missing`` is raised when the file lacks the mapped stream."""
    done = _run(stream.global_args("-nostdin", "-v", "error").compile(), path, timeout)
    if done.returncode != 0:
        if b"matches no streams" in done.stderr:
            raise missing
        raise CorruptVideo(f"{path} is not a readable video: {last_line(done.stderr)}")
    return done.stdout


def extract_audio(
    path: str | Path,
    start: float = 0.0,
    duration: float | None = None,
    sample_rate: int = SAMPLE_RATE,
    timeout: float = 300.0,
    tolerance: float = 0.05,
) -> np.ndarray:
    """The soundtrack from ``start`` (exactly ``duration`` long when given) at 16 kHz mono. Silence is
    returned as it is: a silent source is still a training example."""
    return decode_audio(path, start, duration, sample_rate, timeout, tolerance)


def extract_frames(
    path: str | Path,
    start: float = 0.0,
    duration: float | None = None,
    fps: float = FRAME_RATE,
    size: int = FRAME_SIZE,
    quality: int = 90,
    timeout: float = 300.0,
) -> list[tuple[float, bytes]]:
    """Frames at ``start + k / fps`` seconds within the clip, as (timestamp, JPEG bytes) pairs.

    Frame k is the source frame on screen at its timestamp, to within one source frame: timestamps
    are rebased on the first decoded frame and the fps filter rounds up (its default, rounding to
    nearest, takes a frame up to half an output period late). Each frame's short side is scaled to
    ``size`` and the centre ``size`` x ``size`` cropped. A clip without a frame raises NoVideoFrames.
    """
    stream = (
        _input(path, start, duration)["v:0"]
        .filter("setpts", "PTS-STARTPTS")
        .filter("fps", fps=fps, round="up")
        .filter("scale", size, size, force_original_aspect_ratio="increase", flags="bicubic")
        .filter("crop", size, size)
        .output("pipe:", format="rawvideo", pix_fmt="rgb24")
    )
    raw = _decode(stream, path, timeout, NoVideoFrames(f"{path} has no video stream"))
    frames = np.frombuffer(raw, dtype=np.uint8).reshape(-1, size, size, 3)
    if duration is not None:
        frames = frames[: math.ceil(duration * fps - 1e-9)]
    if len(frames) == 0:
        raise NoVideoFrames(f"{path} has no video frames from {start:.2f} s")
    return [(start + k / fps, _jpeg(frame, quality)) for k, frame in enumerate(frames)]


def _jpeg(frame: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="JPEG", quality=quality)
    return out.getvalue()
