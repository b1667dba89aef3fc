"""Synthetic performances whose note times are known exactly: ground truth for alignment.

Published alignments are estimates, so they can rank aligners only by agreement with another
aligner. A score played with a smooth random tempo curve and per-note timing jitter, rendered with
a different SoundFont than the reference rendering (FluidR3 GM here, MuseScore General there), is
a performance whose every onset is known, with the timbre mismatch a real recording has.

Real music is hardest for an aligner where one tempo fits it worst: slow movements that slow
down further at the end, fermatas, a long final chord, and seconds of silence or room noise before
the first note and after the last. ``HARD`` plays a score that way; it is what the alignment
benchmark and tests hold v2 to.
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
VIOLIN_LOWEST = 55  # G3, the open G string

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


# A performer of slow movements: a base tempo of 40-66 qpm, a ritardando to 40-70 % of it and a
# diminuendo to 35-70 % of the velocity over the last 8 beats, the last chord and one other onset
# held 1.5-2.5 times as long, and up to 3 s before the first note and after the last. With
# ``HARD_NOISE_DB`` as ``synthetic_pair``'s noise floor, room noise 45-20 dB below the music runs
# through all of it, lead-in and tail included.
HARD = {
    "tempo_range": (40.0, 66.0),
    "ritardando": (0.4, 0.7),
    "ritardando_beats": 8.0,
    "diminuendo": (0.35, 0.7),
    "fermatas": 2,
    "fermata_hold": (1.5, 2.5),
    "lead_in_s": (0.5, 3.0),
    "tail_s": (0.5, 3.0),
}
HARD_NOISE_DB = (-45.0, -20.0)


@dataclass(frozen=True)
class Performance:
    """A humanized rendition: true note times in seconds, in the score's row order, and the
    length of the recording, which may run on past the last note."""

    name: str
    onsets_s: np.ndarray
    offsets_s: np.ndarray
    pitches: np.ndarray
    velocities: np.ndarray
    end_s: float


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


def final_ramp(beats: np.ndarray, last_beat: float, final: float, length_beats: float) -> np.ndarray:
    """A factor at each beat: 1 until ``length_beats`` before the last onset, moving linearly to
    ``final`` there and staying at it, the shape of a final ritardando or diminuendo, so the final
    chord is played as slowly and softly as its approach."""
    return np.interp(beats, [last_beat - length_beats, last_beat], [1.0, final])


def fermata_holds(times: np.ndarray, pitches: np.ndarray, end: int, count: int, hold: tuple[float, float],
                  resolution: int, rng: np.random.Generator) -> np.ndarray:
    """Factor on the time each of ``end`` ticks takes: ``count`` of the onsets ``times`` (sounding
    ``pitches``) held ``hold`` times as long until the next onset, the last one (the final chord)
    first, then random ones where a phrase can rest: a note of a beat or longer between two
    other pitches. A hold next to a repeat of its pitch is left out because it has no onset to find:
    FluidSynth's violins restrike a legato repeat with no more change than their vibrato makes."""
    factor = np.ones(end)
    spans = np.diff(np.append(times, end))
    inner = np.arange(1, len(times) - 1)
    resting = inner[(spans[inner] >= resolution) & (pitches[inner] != pitches[inner - 1])
                    & (pitches[inner] != pitches[inner + 1])]
    others = rng.choice(resting, min(count - 1, len(resting)), replace=False) if count > 1 else []
    for k in [len(times) - 1, *others][:count]:
        factor[times[k]:times[k] + spans[k]] = rng.uniform(*hold)
    return factor


def humanize(score: Score, seed: int, tempo_depth: float = 0.15, jitter_s: float = 0.015,
             velocity_sd: float = 8.0, lead_in_s: tuple[float, float] = (0.2, 1.5),
             tempo_range: tuple[float, float] | None = None, ritardando: tuple[float, float] = (1.0, 1.0),
             ritardando_beats: float = 8.0, fermatas: int = 0, fermata_hold: tuple[float, float] = (1.5, 3.0),
             tail_s: tuple[float, float] = (0.0, 0.0), diminuendo: tuple[float, float] = (1.0, 1.0)) -> Performance:
    """Play ``score`` at its tempo bent by a random curve, with Gaussian onset jitter (clipped at 3 sigma).

    Jitter is drawn per distinct onset time, so the notes of a chord stay together, and offsets take
    the jitter of the onset they meet, so legato stays legato. Onset order is preserved. Like a
    recording slice, the performance opens with a random stretch of silence within ``lead_in_s``
    and runs on for one within ``tail_s`` after its last note.

    ``tempo_range`` draws the base tempo instead of taking the score's; ``ritardando`` and
    ``diminuendo`` the tempo and loudness at the last onset relative to the rest, reached over
    ``ritardando_beats``; ``fermatas`` and ``fermata_hold`` are ``fermata_holds``'. These draw from
    a second random stream, so a performance without them is the one the same seed gave before
    they existed.
    """
    rng = np.random.default_rng(seed)
    shape = np.random.default_rng([seed, 1])
    notes, res = score.notes, score.resolution
    end = int(notes[:, 1].max())
    times, first = np.unique(notes[:, 0], return_index=True)
    beats = np.arange(0, end + 1) / res
    last_beat = times[-1] / res
    qpm = shape.uniform(*tempo_range) if tempo_range is not None else score.qpm
    tempo = tempo_curve(beats[-1], rng, tempo_depth)(beats)
    tempo *= final_ramp(beats, last_beat, shape.uniform(*ritardando), ritardando_beats)
    seconds_per_beat = 60.0 / (qpm * tempo)
    tick_seconds = (seconds_per_beat[1:] + seconds_per_beat[:-1]) / 2 / res
    tick_seconds *= fermata_holds(times, notes[first, 2], end, fermatas, fermata_hold, res, shape)
    warp = np.concatenate([[0.0], np.cumsum(tick_seconds)])

    jitter = np.clip(rng.normal(0.0, jitter_s, len(times)), -3 * jitter_s, 3 * jitter_s)
    played = warp[times] + jitter - jitter[0]
    played[1:] = played[0] + np.cumsum(np.maximum(np.diff(played), 0.5 * np.diff(warp[times])))
    shift = played - warp[times]
    onsets = warp[notes[:, 0]] + np.interp(notes[:, 0], times, shift)
    offsets = warp[notes[:, 1]] + np.interp(notes[:, 1], times, shift)
    offsets = np.maximum(offsets, onsets + 0.5 * (warp[notes[:, 1]] - warp[notes[:, 0]]))
    loudness = notes[:, 3] * final_ramp(notes[:, 0] / res, last_beat, shape.uniform(*diminuendo), ritardando_beats)
    velocities = np.clip(np.round(loudness + rng.normal(0.0, velocity_sd, len(notes))), 20, 127).astype(np.int64)
    lead = rng.uniform(*lead_in_s)
    end_s = float(offsets.max()) + lead + shape.uniform(*tail_s)
    return Performance(score.name, onsets + lead, offsets + lead, notes[:, 2].copy(), velocities, end_s)


def with_final_chord(score: Score, beats: float = 2.0) -> Score:
    """``score`` closing on a chord held ``beats`` beats after its last note: that note's pitch with
    a fourth and an octave below it (those on the violin, from G3), as movements end on a triple stop."""
    last = score.notes[np.argmax(score.notes[:, 0])]
    pitches = [p for p in (last[2], last[2] - 5, last[2] - 12) if p >= VIOLIN_LOWEST]
    start = int(score.notes[:, 1].max())
    chord = [[start, start + round(beats * score.resolution), p, last[3]] for p in pitches]
    return Score(score.name, np.concatenate([score.notes, np.array(chord, dtype=score.notes.dtype)]), score.qpm,
                 score.resolution)


def room_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of pink noise at unit RMS: power falling 3 dB an octave, like hiss and a room."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    spectrum[0] = 0.0
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise**2))


def with_room_noise(audio: np.ndarray, music: slice, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """``audio`` with ``room_noise`` throughout, ``level_db`` relative to the RMS of its ``music`` part."""
    rms = np.sqrt(np.mean(np.asarray(audio[music], dtype=np.float64) ** 2))
    return (audio + rms * 10 ** (level_db / 20) * room_noise(len(audio), rng)).astype(np.float32)


def synthetic_pair(score: Score, seed: int, reference_soundfont: str | Path, performer_soundfont: str | Path = FLUID_R3,
                   program: int = VIOLIN, sr: int = SAMPLE_RATE, noise_db: tuple[float, float] | None = None,
                   **humanize_args) -> SyntheticPair:
    """Humanize ``score`` and render it with ``performer_soundfont``; render the score itself with
    ``reference_soundfont`` at the single tempo that makes it last as long as the performance, as
    the dataset did. True times are rounded to samples, the resolution the performance is rendered at.

    ``noise_db`` adds ``room_noise`` at a level drawn from that range, in dB relative to the RMS
    of the music, to the whole recording: its lead-in and tail become noise instead of silence.
    """
    played = humanize(score, seed, **humanize_args)
    ticks = np.round(np.stack([played.onsets_s, played.offsets_s], 1) * sr).astype(np.int64)
    length = round(played.end_s * sr)
    performance = Performance(played.name, ticks[:, 0] / sr, ticks[:, 1] / sr, played.pitches, played.velocities,
                              length / sr)
    with tempfile.TemporaryDirectory(prefix="humanize-") as tmp:
        performed = np.column_stack([ticks, played.pitches, played.velocities])
        # one tick per sample: 60 qpm at a resolution of sr ticks per quarter
        recording = render(performed, 60.0, performer_soundfont, Path(tmp) / "performance.wav", program, sr,
                           resolution=sr)
        qpm = tempo_for(score.notes, length / sr, score.resolution)
        rendering = render_score(score.notes, qpm, reference_soundfont, Path(tmp) / "score.wav", score.resolution,
                                 program=program, sample_rate=sr)
    recording = np.pad(recording, (0, length - len(recording)))
    if noise_db is not None:
        rng = np.random.default_rng([seed, 2])
        recording = with_room_noise(recording, slice(ticks[:, 0].min(), ticks[:, 1].max()), rng.uniform(*noise_db), rng)
    seconds = score.notes[:, :2] * 60.0 / (qpm * score.resolution)
    return SyntheticPair(performance, recording, rendering, seconds[:, 0], seconds[:, 1], sr)
