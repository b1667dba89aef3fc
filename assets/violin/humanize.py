"""Synthetic performances whose note times are known exactly: ground truth for alignment.

Published alignments are estimates, so they can rank aligners only by agreement with another
aligner. A score played with a smooth random tempo curve and per-note timing jitter, rendered with
a different SoundFont than the reference rendering (FluidR3 GM here, MuseScore General there), is
a performance whose every onset is known, with the timbre mismatch a real recording has.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import music21
import numpy as np
from scipy.interpolate import PchipInterpolator

from assets.scores.music21_convert import from_music21
from assets.violin.alignment import render_score
from assets.violin.render import VIOLIN, render, tempo_for
from assets.violin.scores import RESOLUTION
from assets.violin.sources import SAMPLE_RATE

FLUID_R3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"

# Violin lines of the music21 corpus (path, tune number in an ABC collection, a plausible qpm):
# O'Neill's fiddle tunes, monophonic, and first-violin parts of string quartets and a trio sonata.
CORPUS_PIECES = (
    ("oneills1850/0001-0050.abc", 1, 104.0),
    ("oneills1850/0001-0050.abc", 12, 108.0),
    ("oneills1850/0051-0100.abc", 60, 100.0),
    ("oneills1850/0101-0200.abc", 150, 112.0),
    ("mozart/k80/movement1", None, 66.0),
    ("mozart/k155/movement1", None, 120.0),
    ("haydn/opus1no1/movement1", None, 132.0),
    ("corelli/opus3no1/1grave", None, 60.0),
)


@dataclass(frozen=True)
class Score:
    """A named note array (n, 4): onset, offset, pitch, velocity in ticks, the layout of the notes CSVs."""

    name: str
    notes: np.ndarray
    qpm: float  # the tempo a performer would take it at
    resolution: int = RESOLUTION


@dataclass(frozen=True)
class Performance:
    """A humanized rendition: true note times in seconds, in the score's row order."""

    name: str
    onsets_s: np.ndarray
    offsets_s: np.ndarray
    pitches: np.ndarray
    velocities: np.ndarray


@dataclass(frozen=True)
class SyntheticPair:
    """What an aligner sees (a recording and a score rendering) and the truth it should recover."""

    performance: Performance
    recording: np.ndarray
    rendering: np.ndarray
    score_onsets_s: np.ndarray  # note times in the rendering
    score_offsets_s: np.ndarray
    sr: int = SAMPLE_RATE


def excerpt(score: Score, start_beat: float, n_beats: float) -> Score:
    """Notes starting in [start_beat, start_beat + n_beats), shifted to start at 0 and cut at the end."""
    start, stop = round(start_beat * score.resolution), round((start_beat + n_beats) * score.resolution)
    notes = score.notes[(score.notes[:, 0] >= start) & (score.notes[:, 0] < stop)].copy()
    if len(notes) == 0:
        raise ValueError(f"{score.name} has no notes in beats [{start_beat}, {start_beat + n_beats})")
    notes[:, 1] = np.minimum(notes[:, 1], stop)
    notes[:, :2] -= notes[0, 0]
    return Score(f"{score.name}@{start_beat:g}", notes, score.qpm, score.resolution)


def corpus_score(path: str, number: int | None, qpm: float) -> Score:
    """The first part of a music21 corpus piece (``number`` picks a tune of an ABC collection)."""
    parsed = music21.corpus.parse(path, number=number) if number is not None else music21.corpus.parse(path)
    music = from_music21(parsed, resolution=RESOLUTION)
    rows = [(n.time, n.end, n.pitch, n.velocity) for n in music.tracks[0].notes]
    name = f"{path}#{number}" if number is not None else path
    return Score(name, np.array(rows, dtype=np.int64), qpm)


def tempo_curve(n_beats: float, rng: np.random.Generator, depth: float = 0.15,
                knot_beats: float = 4.0) -> PchipInterpolator:
    """Local tempo over the base tempo as a smooth function of score beats, within 1 ± depth.

    Random knots every ``knot_beats`` beats joined by a monotone cubic, which never overshoots the
    knots, so the bound holds everywhere.
    """
    knots = np.arange(0.0, n_beats + 2 * knot_beats, knot_beats)
    return PchipInterpolator(knots, 1.0 + depth * rng.uniform(-1.0, 1.0, len(knots)))


def humanize(score: Score, seed: int, tempo_depth: float = 0.15, jitter_s: float = 0.015,
             velocity_sd: float = 8.0, lead_in_s: tuple[float, float] = (0.2, 1.5)) -> Performance:
    """Play ``score`` at its tempo bent by a random curve, with Gaussian onset jitter (clipped at 3 sigma).

    Jitter is drawn per distinct onset time, so the notes of a chord stay together, and offsets take
    the jitter of the onset they meet, so legato stays legato. Onset order is preserved. Like a
    recording slice, the performance opens with a random stretch of silence within ``lead_in_s``
    and ends with its last note.
    """
    rng = np.random.default_rng(seed)
    notes, res = score.notes, score.resolution
    beats = np.arange(0, notes[:, 1].max() + 1) / res
    seconds_per_beat = 60.0 / (score.qpm * tempo_curve(beats[-1], rng, tempo_depth)(beats))
    warp = np.concatenate([[0.0], np.cumsum((seconds_per_beat[1:] + seconds_per_beat[:-1]) / 2 / res)])

    times = np.unique(notes[:, 0])
    jitter = np.clip(rng.normal(0.0, jitter_s, len(times)), -3 * jitter_s, 3 * jitter_s)
    played = warp[times] + jitter - jitter[0]
    played[1:] = played[0] + np.cumsum(np.maximum(np.diff(played), 0.5 * np.diff(warp[times])))
    shift = played - warp[times]
    onsets = warp[notes[:, 0]] + np.interp(notes[:, 0], times, shift)
    offsets = warp[notes[:, 1]] + np.interp(notes[:, 1], times, shift)
    offsets = np.maximum(offsets, onsets + 0.5 * (warp[notes[:, 1]] - warp[notes[:, 0]]))
    velocities = np.clip(np.round(notes[:, 3] + rng.normal(0.0, velocity_sd, len(notes))), 20, 127).astype(np.int64)
    lead = rng.uniform(*lead_in_s)
    return Performance(score.name, onsets + lead, offsets + lead, notes[:, 2].copy(), velocities)


def synthetic_pair(score: Score, seed: int, reference_soundfont: str | Path, performer_soundfont: str | Path = FLUID_R3,
                   program: int = VIOLIN, sr: int = SAMPLE_RATE, **humanize_args) -> SyntheticPair:
    """Humanize ``score`` and render it with ``performer_soundfont``; render the score itself with
    ``reference_soundfont`` at the single tempo that makes it last as long as the performance, as
    the dataset did. True times are rounded to samples, the resolution the performance is rendered at.
    """
    played = humanize(score, seed, **humanize_args)
    ticks = np.round(np.stack([played.onsets_s, played.offsets_s], 1) * sr).astype(np.int64)
    performance = Performance(played.name, ticks[:, 0] / sr, ticks[:, 1] / sr, played.pitches, played.velocities)
    with tempfile.TemporaryDirectory(prefix="humanize-") as tmp:
        performed = np.column_stack([ticks, played.pitches, played.velocities])
        # one tick per sample: 60 qpm at a resolution of sr ticks per quarter
        recording = render(performed, 60.0, performer_soundfont, Path(tmp) / "performance.wav", program, sr,
                           resolution=sr)
        qpm = tempo_for(score.notes, len(recording) / sr, score.resolution)
        rendering = render_score(score.notes, qpm, reference_soundfont, Path(tmp) / "score.wav", score.resolution,
                                 program=program, sample_rate=sr)
    seconds = score.notes[:, :2] * 60.0 / (qpm * score.resolution)
    return SyntheticPair(performance, recording, rendering, seconds[:, 0], seconds[:, 1], sr)
