"""The one ffmpeg audio decode: any file ffmpeg reads, as float32 mono at a chosen rate.

Violin recordings and video soundtracks both come through here, so a slice means the same
thing in both lineages: exactly ``round(duration * sample_rate)`` samples, a stream up to
``tolerance`` seconds short (decoder priming and padding) zero-padded, anything shorter refused.
Bad files raise ``MediaError`` subclasses, whose type names go into reject rows.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import ffmpeg
import numpy as np


class MediaError(ValueError):
    """A media file that cannot be decoded as asked; the type name goes into the reject row."""


class UnreadableAudio(MediaError):
    pass


class NoAudioStream(MediaError):
    pass


class TruncatedAudio(MediaError):
    pass


def last_line(stderr: bytes) -> str:
    """The line of ffmpeg's error output that says what went wrong."""
    lines = stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "ffmpeg failed"


def decode_audio(
    path: str | Path,
    start: float = 0.0,
    duration: float | None = None,
    sample_rate: int = 16_000,
    timeout: float = 300.0,
    tolerance: float = 0.05,
) -> np.ndarray:
    """Seconds [start, start + duration) of the first audio stream (all of it from ``start`` without
    a duration), as float32 mono at ``sample_rate``."""
    source = ffmpeg.input(str(path), ss=start) if duration is None else ffmpeg.input(str(path), ss=start, t=duration)
    command = (
        source["a:0"]
        .output("pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=sample_rate)
        .global_args("-nostdin", "-v", "error")
        .compile()
    )
    try:
        done = subprocess.run(command, check=False, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise UnreadableAudio(f"ffmpeg took longer than {timeout:.0f} s to decode {path}") from exc
    if done.returncode != 0:
        if b"matches no streams" in done.stderr:
            raise NoAudioStream(f"{path} has no audio stream")
        raise UnreadableAudio(f"{path} is not readable audio: {last_line(done.stderr)}")
    samples = np.frombuffer(done.stdout, dtype=np.float32)
    if duration is None:
        return samples.copy()
    expected = round(duration * sample_rate)
    if len(samples) < expected - tolerance * sample_rate:
        raise TruncatedAudio(f"{path} has {len(samples) / sample_rate:.2f} s of audio from {start:.2f} s, not {duration:.2f} s")
    audio = np.zeros(expected, dtype=np.float32)
    audio[: min(expected, len(samples))] = samples[:expected]
    return audio
