import numpy as np
import pytest

from assets.violin import humanize
from assets.violin.scores import RESOLUTION

DEADPAN = {"tempo_depth": 0.0, "jitter_s": 0.0, "velocity_sd": 0.0, "lead_in_s": (0.0, 0.0)}


def line(durations: list[int], pitches: list[int], qpm: float = 60.0) -> humanize.Score:
    """One note after another, ``durations`` in ticks, at velocity 80."""
    onsets = np.concatenate([[0], np.cumsum(durations)[:-1]])
    notes = np.column_stack([onsets, onsets + durations, pitches, np.full(len(durations), 80)])
    return humanize.Score("line", notes.astype(np.int64), qpm)


def quarters(n: int, qpm: float = 60.0) -> humanize.Score:
    return line([RESOLUTION] * n, [60 + k % 7 for k in range(n)], qpm)


def test_a_final_ritardando_slows_only_the_last_beats():
    played = humanize.humanize(quarters(32), seed=0, ritardando=(0.5, 0.5), ritardando_beats=8.0, **DEADPAN)
    intervals = np.diff(played.onsets_s)
    np.testing.assert_allclose(intervals[:23], 1.0, atol=1e-9)  # the ramp starts 8 beats before the last onset
    assert np.all(np.diff(intervals[23:]) > 0)
    assert 1.8 < intervals[-1] < 2.0  # the tempo falls from 0.56 to 0.5 of itself over the last beat
    assert played.offsets_s[-1] - played.onsets_s[-1] == pytest.approx(2.0)  # the final note at half tempo


def test_fermatas_hold_the_final_note_and_a_resting_note_between_other_pitches():
    eighth, half = RESOLUTION // 2, 2 * RESOLUTION
    durations = [eighth] * 8 + [half] + [eighth] * 4 + [half, eighth] + [eighth] * 3 + [RESOLUTION]
    pitches = [60, 62, 64, 65, 67, 69, 71, 72, 76, 72, 71, 69, 67, 65, 65, 64, 62, 60, 59]
    score = line(durations, pitches)
    deadpan = np.diff(np.append(score.notes[:, 0], score.notes[-1, 1])) / RESOLUTION  # seconds at 60 qpm
    for seed in range(5):
        played = humanize.humanize(score, seed, fermatas=2, fermata_hold=(2.0, 2.0), **DEADPAN)
        spans = np.diff(np.append(played.onsets_s, played.offsets_s[-1]))
        held = np.flatnonzero(~np.isclose(spans, deadpan))
        # the last note, and the half note between other pitches, never the one before a repeat of its pitch
        np.testing.assert_array_equal(held, [8, len(durations) - 1])
        np.testing.assert_allclose(spans[held], 2 * deadpan[held])


def test_lead_in_tail_and_base_tempo_are_drawn_within_their_ranges():
    score = quarters(16)
    tempos, tails = [], []
    for seed in range(20):
        played = humanize.humanize(score, seed, **{**humanize.HARD, "tempo_depth": 0.0, "jitter_s": 0.0})
        assert 0.5 <= played.onsets_s[0] <= 3.0
        tails.append(played.end_s - played.offsets_s.max())
        tempos.append(60.0 / (played.onsets_s[1] - played.onsets_s[0]))
    assert 0.5 <= min(tails) and max(tails) <= 3.0 and max(tails) - min(tails) > 1.0
    assert 40.0 <= min(tempos) and max(tempos) <= 66.0 and max(tempos) - min(tempos) > 10.0


def test_hard_performances_are_seeded_and_leave_the_default_draws_alone():
    score = quarters(24, qpm=100.0)
    a, b, c = (humanize.humanize(score, seed, **humanize.HARD) for seed in (3, 3, 4))
    np.testing.assert_array_equal(a.onsets_s, b.onsets_s)
    np.testing.assert_array_equal(a.velocities, b.velocities)
    assert a.end_s == b.end_s and not np.allclose(a.onsets_s, c.onsets_s)
    plain, tailed = humanize.humanize(score, 3), humanize.humanize(score, 3, tail_s=(1.0, 2.0))
    np.testing.assert_array_equal(plain.onsets_s, tailed.onsets_s)
    np.testing.assert_array_equal(plain.velocities, tailed.velocities)
    assert plain.end_s == plain.offsets_s.max() and 1.0 <= tailed.end_s - tailed.offsets_s.max() <= 2.0


def test_a_diminuendo_softens_the_last_beats():
    played = humanize.humanize(quarters(16), seed=0, diminuendo=(0.5, 0.5), ritardando_beats=4.0, **DEADPAN)
    np.testing.assert_array_equal(played.velocities[:11], 80)
    assert played.velocities[-1] == 40 and np.all(np.diff(played.velocities[11:]) < 0)


def test_a_final_chord_is_a_triple_stop_under_the_last_note():
    score = humanize.Score("s", np.array([[0, 24, 67, 80], [24, 48, 62, 70]]), 60.0)
    closed = humanize.with_final_chord(score, beats=2.0)
    # a fourth below, 57, is on the violin; an octave below, 50, is under its G string
    np.testing.assert_array_equal(closed.notes[2:], [[48, 96, 62, 70], [48, 96, 57, 70]])
    np.testing.assert_array_equal(closed.notes[:2], score.notes)


def test_room_noise_is_pink_at_unit_rms():
    noise = humanize.room_noise(2**16, np.random.default_rng(0))
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0)
    power = np.abs(np.fft.rfft(noise)) ** 2
    low, high = power[400:800].mean(), power[4000:8000].mean()  # a decade apart
    assert 7.0 < low / high < 14.0  # power falls as 1/f
    np.testing.assert_array_equal(noise, humanize.room_noise(2**16, np.random.default_rng(0)))
