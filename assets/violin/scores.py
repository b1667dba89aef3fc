"""Reference scores -> note arrays, with repeats played the way the recording plays them.

The Bach Violin Dataset's notes CSVs are music21's ``expandRepeats()`` of the score file named in
info.csv, at 24 ticks per quarter, chords split into notes, sorted as tuples. Where a performer
skips a repeat, the dataset ships an edited score (``bwv1002_mov7_10.mxl``: first repeat kept, the
second one's marks removed), so expanding that file gives the played notes. The repeat flags of
info.csv say the same thing, and applying them here lets the unedited score give identical notes:
a section whose flag is 0 loses its repeat marks and its first ending before expansion.
"""

from __future__ import annotations

import csv
from pathlib import Path

import music21
import numpy as np
from music21 import bar, spanner, stream

from assets.scores.music21_convert import from_music21

RESOLUTION = 24
NOTE_COLUMNS = ("onset", "offset", "pitch", "velocity")


class ScoreError(ValueError):
    """A score that cannot be read, or whose repeats disagree with the manifest's flags."""


def score_notes(
    path: str | Path,
    repeat1: bool | None = None,
    repeat2: bool | None = None,
    resolution: int = RESOLUTION,
) -> np.ndarray:
    """Notes of a MusicXML score as an int64 array (n, 4): onset, offset, pitch, velocity in ticks.

    ``repeatK`` True takes the K-th repeat, False plays that section once (skipping its first
    ending), None plays it as written; a flag asking for a repeat the score does not have raises.
    """
    try:
        score = music21.converter.parse(str(path))
    except Exception as exc:  # music21 raises many unrelated types on malformed files
        raise ScoreError(f"cannot read score {path}: {type(exc).__name__}: {exc}") from exc
    parts = list(score.parts) if isinstance(score, stream.Score) else [score]
    for part in parts:
        _apply_repeat_flags(part, (repeat1, repeat2), path)
    try:
        played = score.expandRepeats() if _has_repeats(score) else score
    except music21.exceptions21.Music21Exception as exc:
        raise ScoreError(f"cannot expand the repeats of {path}: {exc}") from exc
    music = from_music21(played, resolution=resolution)
    rows = [(n.time, n.end, n.pitch, n.velocity) for track in music.tracks for n in track.notes]
    if not rows:
        raise ScoreError(f"score {path} has no notes")
    return sort_notes(np.array(rows, dtype=np.int64))


def sort_notes(notes: np.ndarray) -> np.ndarray:
    """Rows in tuple order (onset, then offset, pitch, velocity), the order of the published CSVs."""
    return notes[np.lexsort(notes.T[::-1])]


def read_notes_csv(path: str | Path) -> np.ndarray:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = tuple(next(reader))
        if header != NOTE_COLUMNS:
            raise ValueError(f"{path}: expected columns {NOTE_COLUMNS}, found {header}")
        return np.array([[int(v) for v in row] for row in reader], dtype=np.int64).reshape(-1, 4)


def write_notes_csv(notes: np.ndarray, path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(NOTE_COLUMNS)
        writer.writerows(notes.tolist())


def _has_repeats(score: stream.Stream) -> bool:
    return score.recurse().getElementsByClass(bar.Repeat).first() is not None


def _is_repeat(barline: bar.Barline | None, direction: str) -> bool:
    return isinstance(barline, bar.Repeat) and barline.direction == direction


def _apply_repeat_flags(part: stream.Stream, flags: tuple[bool | None, ...], path: str | Path) -> None:
    """Unmark the repeated sections whose flag is False; sections are counted by their end repeats."""
    measures = list(part.getElementsByClass(stream.Measure))
    ends = [i for i, m in enumerate(measures) if _is_repeat(m.rightBarline, "end")]
    for k, flag in enumerate(flags):
        if flag and k >= len(ends):
            raise ScoreError(f"the manifest takes repeat {k + 1} but {path} has only {len(ends)} repeated sections")
    brackets = list(part.getElementsByClass(spanner.RepeatBracket))
    dropped: list[stream.Measure] = []
    for k, end in enumerate(ends[: len(flags)]):
        if flags[k] is not False:
            continue
        begin = ends[k - 1] + 1 if k else 0
        for m in measures[begin : end + 1]:
            if _is_repeat(m.leftBarline, "start"):
                m.leftBarline = bar.Barline("regular")
        measures[end].rightBarline = bar.Barline("regular")
        first_ending = next((b for b in brackets if any(m is measures[end] for m in b.getSpannedElements())), None)
        if first_ending is None:
            continue
        dropped.extend(first_ending.getSpannedElements())
        after = measures[end + 1] if end + 1 < len(measures) else None
        for b in brackets:
            if b is first_ending or (after is not None and b.getFirst() is after):
                part.remove(b)
    if dropped:
        part.remove(dropped, shiftOffsets=True)
