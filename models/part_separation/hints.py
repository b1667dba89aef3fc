"""Song-level hints: each part's entry (first note) and mean pitch.

Hints come from the labels of the whole song (:func:`hints_from_labels`). Without labels (a
user's single-track keyboard MIDI) entry hints are absent and pitch hints are the training set's
per-part mean pitches stored in the config; training drops the hints of a crop to exactly that
with probability ``hint_dropout``, so one model serves both cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.part_separation.config import PartSepConfig
from models.part_separation.songs import PartSong

NEVER = np.iinfo(np.int64).max // 4
"""Entry index of a part without notes: it never enters, so every note is "before" its entry."""


@dataclass(frozen=True)
class Hints:
    """Song-level side information; indices are note indices into the sequence they go with."""

    entry: np.ndarray | None  # (n_parts,) index of each part's first note, NEVER for a part without notes
    pitch: np.ndarray | None  # (n_parts,) mean pitch of each part, NaN for a part without notes


def _mean_pitch(pitch: np.ndarray, label: np.ndarray, n_parts: int) -> np.ndarray:
    """Mean pitch per part, NaN for a part without notes."""
    counts = np.bincount(label, minlength=n_parts)
    sums = np.bincount(label, weights=pitch.astype(np.float64), minlength=n_parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def part_pitch_means(songs: Sequence[PartSong], n_parts: int) -> tuple[float | None, ...]:
    """Mean pitch of every part over all notes of ``songs`` (None for a part without notes)."""
    means = _mean_pitch(np.concatenate([s.pitch for s in songs]), np.concatenate([s.label for s in songs]), n_parts)
    return tuple(None if np.isnan(m) else float(m) for m in means)


def hints_from_labels(onset: np.ndarray, pitch: np.ndarray, label: np.ndarray, n_parts: int) -> Hints:
    """Entry (earliest note, lowest index on ties) and mean pitch of every part."""
    order = np.lexsort((np.arange(len(onset)), onset))
    entry = np.full(n_parts, NEVER, dtype=np.int64)
    first = order[np.unique(label[order], return_index=True)[1]]
    entry[label[first]] = first
    return Hints(entry=entry, pitch=_mean_pitch(pitch, label, n_parts))


def resolve_hints(hints: Hints | None, cfg: PartSepConfig) -> Hints:
    """Fill unknown pitch hints with the training-set means: what inference without labels sees."""
    entry = hints.entry if hints is not None else None
    pitch = hints.pitch if hints is not None else None
    if pitch is None and cfg.pitch_means is not None:
        pitch = np.array([np.nan if m is None else m for m in cfg.pitch_means], dtype=np.float64)
    return Hints(entry=entry, pitch=pitch)


def shift_hints(hints: Hints, start: int, semitones: int) -> Hints:
    """Hints of the window starting at note ``start`` of a song transposed by ``semitones``."""
    entry = None if hints.entry is None else np.where(hints.entry == NEVER, NEVER, hints.entry - start)
    pitch = None if hints.pitch is None else hints.pitch + semitones
    return Hints(entry=entry, pitch=pitch)
