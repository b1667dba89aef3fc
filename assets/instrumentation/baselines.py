"""Non-learned baselines of automatic instrumentation (Dong et al., ISMIR 2021, "Arranger").

- Zone-based: every pitch belongs to one part and higher pitches go to parts of lower or equal
  label index (the schemes list parts from the top down), i.e. the keyboard is cut into zones.
  The zones maximising the number of correctly labelled training notes are found exactly by
  dynamic programming over the pitches; Arranger searches the boundaries exhaustively.
- Closest-pitch: given each part's first note with its label (the entry hints), every other note
  goes to the part whose most recent pitch is closest. The monophonic variant also avoids parts
  still sounding. Both follow Arranger's ``closest/inference.py``.

Predictions and labels are label arrays aligned with a `PartSong`'s notes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from models.part_separation import PartSong

N_PITCHES = 128

# Costs of the closest-pitch assignment, each larger than any sum of the smaller ones over a group
# of notes (squared pitch distances are at most 127**2), so they act as strict priorities.
BUSY = 1 << 24  # the part is still sounding (monophonic variant only)
UNENTERED = 1 << 40  # the part's first note comes later
PINNED = 1 << 52  # an entry note placed anywhere but in its own part


def pitch_counts(songs: Sequence[PartSong], n_parts: int) -> np.ndarray:
    """(n_parts, 128) number of notes of each part at each pitch."""
    label = np.concatenate([s.label for s in songs]) if songs else np.zeros(0, np.int64)
    pitch = np.concatenate([s.pitch for s in songs]) if songs else np.zeros(0, np.int64)
    return np.bincount(label * N_PITCHES + pitch, minlength=n_parts * N_PITCHES).reshape(n_parts, N_PITCHES)


def zones_from_counts(counts: np.ndarray) -> np.ndarray:
    """The non-increasing pitch -> label map maximising sum(counts[zones[p], p]).

    best[p, k] is the most notes of pitches <= p labelled correctly with pitch p in part k; going up
    one pitch the label may only stay or decrease, so best[p, k] = counts[k, p] + max(best[p-1, k:]).
    Ties go to the lower label.
    """
    n_parts, n_pitches = counts.shape
    best = np.zeros((n_pitches, n_parts), np.int64)
    best[0] = counts[:, 0]
    for p in range(1, n_pitches):
        best[p] = counts[:, p] + np.maximum.accumulate(best[p - 1][::-1])[::-1]
    zones = np.empty(n_pitches, np.int64)
    zones[-1] = int(np.argmax(best[-1]))
    for p in range(n_pitches - 1, 0, -1):
        k = zones[p]
        zones[p - 1] = k + int(np.argmax(best[p - 1, k:]))
    return zones


def fit_zones(songs: Sequence[PartSong], n_parts: int) -> np.ndarray:
    """(128,) label of each pitch, fitted on `songs` (the training split)."""
    return zones_from_counts(pitch_counts(songs, n_parts))


def zone_ranges(zones: np.ndarray, part_names: Sequence[str]) -> dict[str, list[int]]:
    """Each part's [lowest, highest] pitch under `zones` (the zones are one interval per part, since
    labels never increase with pitch); a part no pitch goes to is left out."""
    ranges = {}
    for part, name in enumerate(part_names):
        pitches = np.flatnonzero(zones == part)
        if len(pitches):
            ranges[name] = [int(pitches[0]), int(pitches[-1])]
    return ranges


def zones_of_ranges(ranges: dict[str, Sequence[int]], part_names: Sequence[str]) -> np.ndarray:
    """The (128,) zones back from `zone_ranges`."""
    zones = np.zeros(N_PITCHES, np.int64)
    for part, name in enumerate(part_names):
        if name in ranges:
            low, high = ranges[name]
            zones[low : high + 1] = part
    return zones


def predict_zones(zones: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    return zones[pitch]


def oracle_zones(song: PartSong) -> np.ndarray:
    """Zones fitted on the song itself: the best any zoning can do on it, an upper bound."""
    return fit_zones([song], len(song.part_names))


def entry_hints(label: np.ndarray, n_parts: int) -> np.ndarray:
    """(n_parts,) index of each part's first note, -1 for a part without notes."""
    entry = np.full(n_parts, -1, np.int64)
    parts, first = np.unique(label, return_index=True)
    entry[parts] = first
    return entry


def closest_pitch(
    onset: np.ndarray, duration: np.ndarray, pitch: np.ndarray, entry: np.ndarray, mono: bool = False
) -> np.ndarray:
    """Label every note by the closest most recent pitch among the parts that have entered.

    Notes are taken one onset at a time (notes sorted by onset, then pitch); a part's most recent
    pitch starts as its entry note's pitch and is updated after each onset, in note order. An
    entry note always gets its own part. A part is available to a note once its entry note comes
    earlier in the sequence; if none is (only possible with hints that are not the song's own,
    since the song's first note is always an entry), every part costs the same and the note goes
    to the lowest label.

    Plain: each note on its own takes the part with the smallest squared pitch distance, ties to
    the lower label. Monophonic: the notes of one onset get distinct parts, chosen jointly over
    every injective assignment to avoid, in this priority, moving an entry note, parts not yet
    entered, parts still sounding at the onset, then pitch distance; a still-sounding part is thus
    taken only when no free part is left. Ties, common when two voices meet on one pitch, keep the
    voices in order: the lower note takes the part of higher label. An onset with more notes than
    parts falls back to the plain rule, as in Arranger.
    """
    n_parts, n_notes = len(entry), len(pitch)
    pred = np.empty(n_notes, np.int64)
    if n_notes == 0:
        return pred
    entered = entry >= 0
    last = np.where(entered, pitch[np.clip(entry, 0, None)], 0).astype(np.int64)
    end = np.zeros(n_parts, np.int64)
    hint = np.full(n_notes, -1, np.int64)
    hint[entry[entered]] = np.flatnonzero(entered)
    # Reverse lexicographic order, so that among equal costs the first found gives the lower notes
    # of an onset the later (lower-sounding) parts and voices stay in order, as Arranger's search does.
    assignments = {
        g: np.array(list(itertools.permutations(range(n_parts), g)))[::-1] for g in range(1, n_parts + 1) if mono
    }
    starts = np.flatnonzero(np.r_[True, onset[1:] != onset[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], n_notes]):
        idx = np.arange(start, stop)
        joint = mono and len(idx) <= n_parts
        cost = (last[None, :] - pitch[idx, None]) ** 2
        if joint:
            cost += BUSY * (end > onset[start])[None, :]
        cost[~(entered[None, :] & (entry[None, :] < idx[:, None]))] = UNENTERED
        hinted = np.flatnonzero(hint[idx] >= 0)
        cost[hinted] = PINNED
        cost[hinted, hint[idx[hinted]]] = 0
        if joint:
            options = assignments[len(idx)]
            labels = options[np.argmin(cost[np.arange(len(idx)), options].sum(axis=1))]
        else:
            labels = np.argmin(cost, axis=1)
        pred[idx] = labels
        for i, label in zip(idx, labels):  # later notes of the onset overwrite, as they come later
            last[label] = pitch[i]
            end[label] = onset[i] + duration[i]
    return pred


def closest_pitch_song(song: PartSong, mono: bool = False) -> np.ndarray:
    """Closest-pitch labels of a song with entry hints taken from its own labels."""
    return closest_pitch(song.onset, song.duration, song.pitch, entry_hints(song.label, len(song.part_names)), mono)


def _flat(arrays: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    if isinstance(arrays, np.ndarray):
        return arrays.reshape(-1)
    return np.concatenate([np.asarray(a).reshape(-1) for a in arrays]) if len(arrays) else np.zeros(0, np.int64)


def accuracy(pred: np.ndarray | Sequence[np.ndarray], label: np.ndarray | Sequence[np.ndarray]) -> float:
    """Fraction of notes labelled correctly, over all notes of all songs given (micro average)."""
    pred, label = _flat(pred), _flat(label)
    return float(np.mean(pred == label)) if len(label) else float("nan")


def confusion_matrix(
    preds: np.ndarray | Sequence[np.ndarray], labels: np.ndarray | Sequence[np.ndarray], n_parts: int
) -> np.ndarray:
    """(n_parts, n_parts) note counts, rows the true part, columns the predicted one."""
    pred, label = _flat(preds), _flat(labels)
    return np.bincount(label * n_parts + pred, minlength=n_parts * n_parts).reshape(n_parts, n_parts)
