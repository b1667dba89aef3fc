"""How far to trust each aligned note, and where an alignment has lost its way.

A note's confidence is the cosine similarity between the recording's constant-Q magnitude
averaged over the note's aligned span and the rendering's averaged over the same note's span in
the score, itself averaged over the note and its ``NEIGHBOURS`` on either side. It reads only
what every aligner returns (starts and ends in the recording) and the two signals it aligned, so
it judges any method alike, and the rendering (transposed for a baroque-tuned recording) is the
reference, so the score's pitches need no tuning. Magnitudes are non-negative, so the similarity
lies in [0, 1]: 1 where the recording sounds the note's spectrum, near 0 where it sounds none of it.
Magnitudes are linear, not in dB, so the strongest partials, which carry the pitch, decide; in dB
the shared noise floor would make any two spans look alike.

A note's own span is a few frames, where a repeated pitch or a stray partial decides; alignment
errors come in stretches (a warping path is continuous), so the neighbours' evidence steadies a
note's value without hiding a wrong passage. Onset strength at the aligned start was left out:
in music of running notes a start moved by a whole number of notes lands on another onset, so it
does not tell a misplaced note from a placed one.

On the sample's three movements, notes placed as the dataset publishes them score 0.70 on
average and under ``LOW`` at fewer than 1.5 % of notes, never more than four in a row; runs of
notes moved by 1-2 s average 0.2-0.45.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

from assets.violin.alignment import cqt_db
from assets.violin.scores import RESOLUTION
from assets.violin.sources import SAMPLE_RATE

HOP = 512  # 32 ms: a sixteenth note at the sample's tempos spans three frames
NEIGHBOURS = 2
LOW = 0.5  # a note under this is low-confidence
STRETCH_NOTES = 8  # a low stretch this long (or STRETCH_SECONDS) is worth listening to
STRETCH_SECONDS = 2.0
RULE = f"{STRETCH_NOTES}+ notes or {STRETCH_SECONDS:g}+ s in a row under {LOW:g}"


@dataclass(frozen=True)
class Stretch:
    """Consecutive low-confidence notes: the first one's index, how many, and their time span."""

    first: int
    notes: int
    start_s: float
    end_s: float

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s


def span_spectra(audio: np.ndarray, starts: np.ndarray, ends: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """(notes, bins) constant-Q magnitude of ``audio`` averaged over each [start, end) in seconds
    (at least one frame, so a note aligned to an instant still has a spectrum)."""
    magnitude = librosa.db_to_amplitude(cqt_db(audio, sr, HOP))
    frames = magnitude.shape[1]
    first = np.clip(np.rint(np.asarray(starts) * sr / HOP).astype(np.int64), 0, frames - 1)
    last = np.clip(np.rint(np.asarray(ends) * sr / HOP).astype(np.int64), first + 1, frames)
    sums = np.concatenate([np.zeros((len(magnitude), 1)), np.cumsum(magnitude, axis=1)], axis=1)
    return ((sums[:, last] - sums[:, first]) / (last - first)).T


def neighbourhood_mean(values: np.ndarray, radius: int = NEIGHBOURS) -> np.ndarray:
    """Mean of each value and up to ``radius`` values on either side (fewer at the ends)."""
    index = np.arange(len(values))
    lo, hi = np.maximum(index - radius, 0), np.minimum(index + radius + 1, len(values))
    sums = np.concatenate([[0.0], np.cumsum(values)])
    return (sums[hi] - sums[lo]) / (hi - lo)


def note_confidence(recording: np.ndarray, rendering: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                    notes: np.ndarray, qpm: float, resolution: int = RESOLUTION, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Confidence in [0, 1] of every aligned note: ``starts``/``ends`` in the recording (seconds) of
    the score ``notes`` (ticks), whose rendering plays at ``qpm``."""
    score_seconds = np.asarray(notes)[:, :2] * 60.0 / (qpm * resolution)
    heard = span_spectra(recording, starts, ends, sr)
    written = span_spectra(rendering, score_seconds[:, 0], score_seconds[:, 1], sr)
    norms = np.linalg.norm(heard, axis=1) * np.linalg.norm(written, axis=1)
    match = np.sum(heard * written, axis=1) / np.maximum(norms, np.finfo(float).tiny)
    return np.clip(neighbourhood_mean(match), 0.0, 1.0)


def low_stretches(confidence: np.ndarray, starts: np.ndarray, ends: np.ndarray, low: float = LOW) -> list[Stretch]:
    """Every maximal run of notes under ``low``, from its first note's start to its latest end."""
    below = np.concatenate([[False], np.asarray(confidence) < low, [False]])
    edges = np.flatnonzero(np.diff(below.astype(np.int8)))
    return [
        Stretch(int(a), int(b - a), float(starts[a]), float(np.max(ends[a:b])))
        for a, b in zip(edges[::2], edges[1::2])
    ]


def longest(stretches: list[Stretch]) -> Stretch | None:
    """The stretch of most notes (the longer in time between equals)."""
    return max(stretches, key=lambda s: (s.notes, s.seconds), default=None)


def flagged(stretches: list[Stretch], min_notes: int = STRETCH_NOTES,
            min_seconds: float = STRETCH_SECONDS) -> list[Stretch]:
    """The stretches long enough, in notes or in time, to be a passage the alignment lost rather
    than a few odd notes (``RULE``)."""
    return [s for s in stretches if s.notes >= min_notes or s.seconds >= min_seconds]


def summary(confidence: np.ndarray, starts: np.ndarray, ends: np.ndarray, low: float = LOW) -> dict[str, float | int]:
    """A recording's confidence at a glance: mean, 10th percentile, share under ``low`` and its
    longest low stretch (notes, seconds and, when there is one, where)."""
    confidence = np.asarray(confidence)
    worst = longest(low_stretches(confidence, starts, ends, low))
    result = {
        "confidence_mean": float(confidence.mean()),
        "confidence_p10": float(np.percentile(confidence, 10)),
        "confidence_low_share": float((confidence < low).mean()),
        "confidence_low": low,
        "low_stretch_notes": worst.notes if worst else 0,
        "low_stretch_seconds": worst.seconds if worst else 0.0,
    }
    if worst:
        result |= {"low_stretch_start_s": worst.start_s, "low_stretch_end_s": worst.end_s}
    return result
