"""What a video holds, and its 16 kHz mono audio and 224 x 224 JPEG frames.

Frames follow the CLIP preprocessing CLIPSep uses: the short side scaled (bicubic) to 224 and a
centre 224 x 224 crop, so image embeddings see the same pixels at training and inference time.
Decoding dominates, so frames are decoded in process (PyAV) from a packet index: the file is read
once without decoding to learn every frame's timestamp and the keyframes, then each sampled frame
is reached by one seek to the keyframe before it, decoding forward only what it depends on and
never a frame twice. Opting into ``keyframes`` sampling decodes keyframes alone. PIL encodes each
JPEG (libjpeg-turbo, about 0.3 ms a frame), keeping ``quality`` on its 1-95 scale. Audio goes
through the one ffmpeg decode in ``assets.core.audio``, which the violin lineage shares. Bad files
raise ``MediaError`` subclasses, whose type names go into reject rows.
"""

from __future__ import annotations

import bisect
import io
import json
import math
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
from PIL import Image

from assets.core.audio import MediaError, NoAudioStream, decode_audio, last_line
from assets.core.processes import ChildDied, call_in_child

SAMPLE_RATE = 16_000
FRAME_RATE = 1.0
FRAME_SIZE = 224
Sampling = Literal["exact", "keyframes"]


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
    sampling: Sampling = "exact",
) -> list[tuple[float, bytes]]:
    """Frames at ``start + k / fps`` seconds within the clip, as (timestamp, JPEG bytes) pairs.

    With ``exact`` sampling frame k is the source frame on screen at its timestamp; ``keyframes``
    takes the last keyframe at or before it instead (up to one keyframe interval early, and only
    keyframes are decoded). Each frame's short side is scaled to ``size`` and the centre ``size`` x
    ``size`` cropped. A clip without a frame raises NoVideoFrames, an unreadable file CorruptVideo,
    also when decoding runs past ``timeout`` seconds or crashes: the decoder runs in a child
    process, killed at the limit, since a call stuck inside it cannot be interrupted.
    """
    args = (path, start, duration, fps, size, quality, timeout, sampling)
    try:
        return call_in_child(_frames, args, timeout)
    except TimeoutError as exc:
        raise CorruptVideo(f"decoding {path} {exc}") from None
    except ChildDied as exc:
        raise CorruptVideo(f"decoding {path} failed: {exc}") from None


def _frames(
    path: str | Path,
    start: float,
    duration: float | None,
    fps: float,
    size: int,
    quality: int,
    timeout: float,
    sampling: Sampling,
) -> list[tuple[float, bytes]]:
    """What extract_frames returns, decoded in this process; past ``timeout`` (checked between
    packets) it stops with CorruptVideo before the parent has to kill it."""
    deadline = time.monotonic() + timeout
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            frames, keys = _index(container, stream, path, deadline)
            first = (container.start_time or 0) / av.time_base + start
            times = _sample_times(first, _end(frames, stream.time_base) if frames else first, duration, fps)
            chosen = [_on_screen(keys if sampling == "keyframes" else frames, t / stream.time_base) for t in times]
            jpegs = {
                pts: _jpeg(_crop(frame, size), quality)
                for pts, frame in _decode(container, stream, sorted(set(chosen)), keys, path, deadline)
            }
    except av.FFmpegError as exc:
        raise CorruptVideo(f"{path} is not a readable video: {exc}") from exc
    if not chosen:
        raise NoVideoFrames(f"{path} has no video frames from {start:.2f} s")
    lost = [start + k / fps for k, pts in enumerate(chosen) if pts not in jpegs]
    if lost:
        raise CorruptVideo(f"{path} has no decodable frame at {lost[0]:.2f} s")
    return [(start + k / fps, jpegs[pts]) for k, pts in enumerate(chosen)]


def _video_stream(container: av.container.InputContainer, path: str | Path) -> av.video.stream.VideoStream:
    """The first video stream that is not cover art, decoded with slice threads: frame threads would
    hold frames back and make every seek refill their pipeline."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            stream.thread_type = "SLICE"
            return stream
    raise NoVideoFrames(f"{path} has no video stream")


def _index(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: str | Path, deadline: float
) -> tuple[list[int], list[int]]:
    """Presentation timestamps of every frame and of the keyframes, ascending, read from packets alone
    (no decoding), so that only the frames to keep and what they depend on are decoded."""
    frames, keys = [], []
    for packet in container.demux(stream):
        _in_time(deadline, path)
        if packet.pts is not None:
            frames.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
    return sorted(frames), sorted(keys)


def _end(frames: list[int], time_base: Fraction) -> float:
    """Seconds at which the last frame leaves the screen, lasting as long as the interval before it."""
    return float((frames[-1] + (frames[-1] - frames[-2] if len(frames) > 1 else 1)) * time_base)


def _sample_times(first: float, end: float, duration: float | None, fps: float) -> list[float]:
    """Seconds ``first + k / fps`` before the video's ``end`` (and within ``duration`` when given)."""
    stop = end if duration is None else min(end, first + duration)
    return [first + k / fps for k in range(max(math.ceil((stop - first) * fps - 1e-9), 0))]


def _on_screen(timestamps: list[int], tick: float) -> int:
    """The last of ``timestamps`` at or before ``tick`` (half a tick of slack for rounding), else the first."""
    return timestamps[max(bisect.bisect_right(timestamps, tick + 0.5) - 1, 0)]


def _runs(wanted: list[int], keys: list[int]) -> list[tuple[int, list[int]]]:
    """(keyframe to seek to, wanted timestamps decoded forward from it): a wanted frame joins the
    previous run when its keyframe comes no later than that run's last frame, so no frame is decoded twice."""
    runs: list[tuple[int, list[int]]] = []
    for pts in wanted:
        key = _on_screen(keys, pts)
        if runs and key <= runs[-1][1][-1]:
            runs[-1][1].append(pts)
        else:
            runs.append((key, [pts]))
    return runs


def _decode(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    wanted: list[int],
    keys: list[int],
    path: str | Path,
    deadline: float,
) -> Iterator[tuple[int, av.VideoFrame]]:
    """(timestamp, frame) for the ``wanted`` timestamps: one seek per run, and the decoder skips
    every non-reference frame that is not wanted (nothing depends on it)."""
    codec = stream.codec_context
    for key, run in _runs(wanted, keys):
        container.seek(key, stream=stream, backward=True)
        needed = set(run)
        for packet in container.demux(stream):
            _in_time(deadline, path)
            codec.skip_frame = "DEFAULT" if packet.pts in needed else "NONREF"
            frames = [frame for frame in codec.decode(packet) if frame.pts is not None]
            yield from ((frame.pts, frame) for frame in frames if frame.pts in needed)
            if any(frame.pts >= run[-1] for frame in frames):
                break


def _in_time(deadline: float, path: str | Path) -> None:
    if time.monotonic() > deadline:
        raise CorruptVideo(f"decoding {path} took longer than its time limit")


def _crop(frame: av.VideoFrame, size: int) -> np.ndarray:
    """The short side scaled (bicubic) to ``size``, the long side rounded as ffmpeg's scale filter
    rounds it, and the centre ``size`` x ``size`` cropped."""
    width = max((2 * size * frame.width + frame.height) // (2 * frame.height), size)
    height = max((2 * size * frame.height + frame.width) // (2 * frame.width), size)
    rgb = frame.reformat(width, height, "rgb24", interpolation="BICUBIC").to_ndarray()
    left, top = (width - size) // 2, (height - size) // 2
    return rgb[top : top + size, left : left + size]


def _jpeg(frame: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="JPEG", quality=quality)
    return out.getvalue()
