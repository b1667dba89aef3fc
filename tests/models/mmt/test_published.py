"""The encoder and the training window against the published MMT data preparation, written out
note by note in plain Python as an oracle.

Independent of the vectorized encoder: muspy's own ``adjust_resolution`` and ``remove_duplicate``,
a set of (beat, position, pitch, duration, program) tuples, Python's tuple sort, a per-duration
nearest-known lookup, and a window cut from a list of notes.
"""

from __future__ import annotations

import copy

import muspy
import numpy as np
import pytest

from models.mmt import window as model_window
from models.mmt.encoding import INSTRUMENTS, KNOWN_DURATIONS, PROGRAM_INSTRUMENTS, RESOLUTION, encode_music, validate


def notes_of(music: muspy.Music) -> list[tuple[int, int, int, int, int]]:
    """The song's sorted, deduplicated note tuples at RESOLUTION, first beat moved to 0."""
    music = copy.deepcopy(music)
    music.adjust_resolution(RESOLUTION)
    for track in music.tracks:
        for note in track.notes:
            note.duration = max(note.duration, 1)
    music.remove_duplicate()
    rows = {
        (*divmod(note.time, RESOLUTION), note.pitch, note.duration, track.program)
        for track in music.tracks
        if not track.is_drum and PROGRAM_INSTRUMENTS[track.program] is not None
        for note in track.notes
    }
    rows = sorted(rows)
    first = rows[0][0]
    return [(b - first, p, n, d, prog) for b, p, n, d, prog in rows]


def duration_code(ticks: int) -> int:
    distances = [abs(known - min(ticks, 384)) for known in KNOWN_DURATIONS]
    return distances.index(min(distances)) + 1


def encode(notes: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    """Header of the notes' instruments, then one code row per note tuple in the order given."""
    instrument = [INSTRUMENTS.index(PROGRAM_INSTRUMENTS[prog]) + 1 for *_, prog in notes]
    rows = [[0, 0, 0, 0, 0, 0]]
    rows += [[1, 0, 0, 0, 0, code] for code in sorted(set(instrument))]
    rows.append([2, 0, 0, 0, 0, 0])
    rows += [
        [3, b + 1, p + 1, n + 1, duration_code(d), code] for (b, p, n, d, _), code in zip(notes, instrument)
    ]
    rows.append([4, 0, 0, 0, 0, 0])
    return np.array(rows, dtype=np.int64)


def window(notes: list[tuple], start: int, max_beat: int, pitch_shift: int = 0) -> list[tuple]:
    """The notes of beats [start, start + max_beat), re-based, pitches shifted and clamped to 0..127."""
    return [
        (b - start, p, min(max(n + pitch_shift, 0), 127), d, prog)
        for b, p, n, d, prog in notes
        if start <= b < start + max_beat
    ]


def music(resolution: int, tracks: list[tuple[int, list[tuple[int, int, int]]]]) -> muspy.Music:
    """tracks: (program, [(time, pitch, duration), ...])."""
    return muspy.Music(
        resolution=resolution,
        tempos=[muspy.Tempo(0, 120.0)],
        tracks=[muspy.Track(program=p, notes=[muspy.Note(t, n, d, 80) for t, n, d in notes]) for p, notes in tracks],
    )


CASES = {
    "programs 0 and 1 in unison": music(12, [(0, [(0, 60, 12), (12, 62, 12)]), (1, [(0, 60, 12)])]),
    "programs 40 and 110 in unison": music(12, [(40, [(0, 67, 24)]), (110, [(0, 67, 24), (24, 69, 12)])]),
    "raw durations 25 and 26 at one onset": music(12, [(0, [(0, 60, 25), (0, 60, 26), (0, 64, 24)])]),
    "resolution 480, onsets rounding to one tick": music(480, [(0, [(0, 60, 480), (10, 60, 500), (15, 62, 470)])]),
    "programs 44 and 46 together": music(12, [(46, [(0, 55, 12)]), (44, [(0, 55, 12), (12, 57, 12)])]),
    "programs 59 and 57 together": music(12, [(59, [(0, 48, 24)]), (57, [(0, 48, 24)])]),
    "zero and one tick at one onset": music(12, [(0, [(0, 60, 0), (0, 60, 1), (3, 61, 0)])]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_encoding_matches_the_published_preparation(name):
    song = CASES[name]
    expected = encode(notes_of(song))
    np.testing.assert_array_equal(encode_music(song), expected)
    assert validate(expected) == []


def test_unison_of_one_instrument_keeps_both_notes():
    codes = encode_music(CASES["programs 0 and 1 in unison"])
    assert (codes[:, 0] == 3).sum() == 3  # the piano C4 of programs 0 and 1 stays twice


def test_simultaneous_notes_follow_program_order_not_instrument_order():
    codes = encode_music(CASES["programs 44 and 46 together"])
    first_beat = codes[(codes[:, 0] == 3) & (codes[:, 1] == 1)]
    strings, harp = INSTRUMENTS.index("strings") + 1, INSTRUMENTS.index("harp") + 1
    assert harp < strings and first_beat[:, 5].tolist() == [strings, harp]  # program 44 before 46


@pytest.mark.parametrize("seed", range(8))
def test_random_multitrack_songs_match_the_published_preparation(seed):
    rng = np.random.default_rng(seed)
    resolution = int(rng.choice([12, 24, 480, 96]))
    programs = [0, *rng.choice([1, 40, 110, 44, 46, 57, 59, 48, 49, 73, 122], size=int(rng.integers(1, 5)), replace=False)]
    tracks = []
    for program in programs:
        n = int(rng.integers(5, 60))
        onset = rng.integers(0, 80 * resolution, n) // int(rng.choice([1, resolution // 4 or 1]))
        tracks.append(
            (int(program), [(int(t), int(p), int(d)) for t, p, d in
                            zip(onset, rng.integers(55, 62, n), rng.integers(0, 3 * resolution, n))])
        )
    song = music(resolution, tracks)
    np.testing.assert_array_equal(encode_music(song), encode(notes_of(song)))


@pytest.mark.parametrize("shift", [-5, 0, 6])
def test_first_window_matches_the_published_loader_with_clamped_pitches(shift):
    song = music(12, [(0, [(12 * b, 121 + b % 7, 12) for b in range(40)] + [(12 * b, 2 + b % 5, 6) for b in range(40)]),
                      (40, [(12 * b + 6, 70, 3) for b in range(20, 40)])])
    notes = notes_of(song)
    got = model_window(encode_music(song), max_beat=16, max_seq_len=1024, pitch_shift=shift)
    np.testing.assert_array_equal(got, encode(window(notes, 0, 16, shift)))
    assert (got[:, 0] == 3).sum() == sum(b < 16 for b, *_ in notes)  # clamped, never dropped
    assert got[got[:, 0] == 1, 5].tolist() == [INSTRUMENTS.index("piano") + 1]  # violin enters at beat 20


def test_random_window_is_one_the_published_loader_can_draw():
    song = music(12, [(0, [(6 * k, 60 + k % 12, 6) for k in range(400)]), (40, [(12 * b, 76, 12) for b in range(150, 200)])])
    notes = notes_of(song)
    codes = encode_music(song)
    n_beats = notes[-1][0] + 1
    candidates = {s: encode(window(notes, s, 32, 2)) for s in range(n_beats - 32)}
    rng = np.random.default_rng(0)
    for _ in range(30):
        got = model_window(codes, max_beat=32, max_seq_len=4096, rng=rng, pitch_shift=2)
        assert any(np.array_equal(got, want) for want in candidates.values())
