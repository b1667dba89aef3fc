"""Scores rendered to audio at the recording's length: the synthetic side of score-to-audio alignment.

As in the Bach Violin Dataset, a score is played at one tempo chosen so that it lasts exactly as
long as the recording slice; dynamic time warping then absorbs only the performer's expressive
timing, not a global stretch. A score whose implied tempo is implausible is the wrong score,
the wrong repeats or the wrong slice, and is refused before any audio is made.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import muspy
import numpy as np
import soundfile as sf

from assets.core.synth import render_midi
from assets.violin.scores import RESOLUTION
from assets.violin.sources import SAMPLE_RATE

VIOLIN = 40
QPM_RANGE = (20.0, 400.0)


class LengthMismatch(ValueError):
    """Notes that cannot last as long as their recording at a plausible tempo."""


def score_seconds(notes: np.ndarray, qpm: float, resolution: int = RESOLUTION) -> float:
    """Length of the notes (up to the last offset) at a single tempo."""
    return float(notes[:, 1].max()) / resolution * 60.0 / qpm


def tempo_for(notes: np.ndarray, seconds: float, resolution: int = RESOLUTION) -> float:
    """The single qpm at which the notes, up to their last offset, last exactly ``seconds``."""
    if len(notes) == 0:
        raise LengthMismatch("a score without notes has no tempo")
    if seconds <= 0:
        raise LengthMismatch(f"a recording slice of {seconds} s has no tempo")
    return 60.0 * float(notes[:, 1].max()) / resolution / seconds


def check_length(
    notes: np.ndarray,
    qpm: float,
    seconds: float,
    tolerance: float = 0.5,
    qpm_range: tuple[float, float] = QPM_RANGE,
    resolution: int = RESOLUTION,
) -> None:
    """Raise ``LengthMismatch`` unless the notes at ``qpm`` last ``seconds`` (within ``tolerance``)
    and ``qpm`` is a tempo a violinist could play."""
    if len(notes) == 0:
        raise LengthMismatch("the score has no notes")
    quarters = float(notes[:, 1].max()) / resolution
    low, high = qpm_range
    if not low <= qpm <= high:
        raise LengthMismatch(
            f"{quarters:g} quarter notes in {seconds:.1f} s means {qpm:.1f} qpm, outside {low:g}..{high:g}: "
            "wrong score, repeats or slice"
        )
    length = score_seconds(notes, qpm, resolution)
    if abs(length - seconds) > tolerance:
        raise LengthMismatch(f"at {qpm:.2f} qpm the score lasts {length:.2f} s, the recording {seconds:.2f} s")


def render(
    notes: np.ndarray,
    qpm: float,
    soundfont: str | Path,
    out_wav: str | Path,
    program: int = VIOLIN,
    sample_rate: int = SAMPLE_RATE,
    transpose: int = 0,
    resolution: int = RESOLUTION,
    timeout: float = 300.0,
) -> np.ndarray:
    """Render notes at one tempo with FluidSynth; writes and returns exactly the score's length of mono audio.

    ``transpose`` shifts every pitch, e.g. -1 for a recording in baroque tuning (A = 415 Hz), so
    that the render sounds at the recording's pitch. The release tail beyond the last offset is cut.
    """
    track = muspy.Track(
        program=program,
        notes=[
            muspy.Note(time=int(on), pitch=int(p) + transpose, duration=int(off - on), velocity=int(v))
            for on, off, p, v in notes
        ],
    )
    music = muspy.Music(resolution=resolution, tempos=[muspy.Tempo(time=0, qpm=qpm)], tracks=[track])
    length = round(score_seconds(notes, qpm, resolution) * sample_rate)
    with tempfile.TemporaryDirectory(prefix="render-") as tmp:
        midi = Path(tmp) / "score.mid"
        muspy.write_midi(midi, music)
        audio = render_midi(midi, Path(tmp) / "score.wav", soundfont, sample_rate=sample_rate, timeout=timeout)
    fitted = np.zeros(length, dtype=np.float32)
    fitted[: min(length, len(audio))] = audio[:length]
    Path(out_wav).parent.mkdir(parents=True, exist_ok=True)
    sf.write(out_wav, fitted, sample_rate, subtype="FLOAT")
    return fitted
