import itertools

import numpy as np
import pytest

from assets.instrumentation import baselines as pb
from models.part_separation import PartSong


def song(onset, duration, pitch, label, n_parts=4, name="s"):
    arrays = [np.asarray(a, np.int64) for a in (onset, duration, pitch, label)]
    return PartSong("toy", name, "test", "satb", tuple("SATB"[:n_parts]), *arrays)


def random_song(rng, n_notes=200, n_parts=3, name="s"):
    """Parts centred an octave apart with overlapping ranges, so no zoning is perfect."""
    label = rng.integers(0, n_parts, n_notes)
    pitch = np.clip(72 - 8 * label + rng.integers(-7, 8, n_notes), 0, 127)
    onset = np.sort(rng.integers(0, 50 * n_notes, n_notes))
    order = np.lexsort((pitch, onset))
    return song(onset[order], np.full(n_notes, 12), pitch[order], label[order], n_parts, name)


def brute_force_best(counts):
    n_parts, n_pitches = counts.shape
    best = -1
    for zones in itertools.product(range(n_parts), repeat=n_pitches):
        if all(a >= b for a, b in itertools.pairwise(zones)):
            best = max(best, int(counts[list(zones), np.arange(n_pitches)].sum()))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_zone_dp_matches_brute_force(seed):
    counts = np.random.default_rng(seed).integers(0, 20, (3, 7))
    zones = pb.zones_from_counts(counts)
    assert np.all(np.diff(zones) <= 0)
    assert counts[zones, np.arange(7)].sum() == brute_force_best(counts)


def test_fitted_zones_are_non_increasing_and_predict_by_pitch():
    rng = np.random.default_rng(0)
    train = [random_song(rng, name=f"t{i}") for i in range(5)]
    zones = pb.fit_zones(train, 3)
    assert zones.shape == (128,) and np.all(np.diff(zones) <= 0)
    assert set(zones[56:80].tolist()) == {0, 1, 2}  # every part owns a zone around its centre
    pitch = np.array([0, 64, 127])
    np.testing.assert_array_equal(pb.predict_zones(zones, pitch), zones[pitch])


def test_separable_parts_get_perfect_zones():
    s = song([0, 0, 0, 24, 24], [24] * 5, [40, 55, 70, 42, 72], [2, 1, 0, 2, 0], n_parts=3)
    assert pb.accuracy(pb.predict_zones(pb.oracle_zones(s), s.pitch), s.label) == 1.0


def test_oracle_is_at_least_the_fitted_zones():
    rng = np.random.default_rng(1)
    zones = pb.fit_zones([random_song(rng, name=f"t{i}") for i in range(5)], 3)
    for i in range(5):
        s = random_song(rng, n_notes=80, name=f"x{i}")
        oracle = pb.accuracy(pb.predict_zones(pb.oracle_zones(s), s.pitch), s.label)
        fitted = pb.accuracy(pb.predict_zones(zones, s.pitch), s.label)
        assert oracle >= fitted and oracle < 1.0


def test_entry_hints():
    np.testing.assert_array_equal(pb.entry_hints(np.array([2, 0, 2, 0]), 4), [1, -1, 0, -1])


# Two voices: the lower one (label 1) holds C4 for two beats while the upper one (label 0) leaps
# down to D4 next to it, then both move. Plain closest-pitch hands D4 to the lower voice; the
# monophonic variant sees the lower voice still sounding and gets every note right.
TWO_VOICES = song(
    onset=[0, 0, 24, 48, 48],
    duration=[48, 24, 24, 24, 24],
    pitch=[60, 72, 62, 59, 64],
    label=[1, 0, 0, 1, 0],
    n_parts=2,
)


def test_closest_pitch_two_voices():
    assert pb.closest_pitch_song(TWO_VOICES).tolist() == [1, 0, 1, 1, 1]
    assert pb.closest_pitch_song(TWO_VOICES, mono=True).tolist() == [1, 0, 0, 1, 0]


def test_part_is_unavailable_before_its_entry():
    # The upper voice dips to C4 before the lower voice enters on B3: C4 stays with the upper voice.
    s = song([0, 24, 48, 48], [24] * 4, [67, 60, 59, 64], [0, 0, 1, 0], n_parts=2)
    for mono in (False, True):
        assert pb.closest_pitch_song(s, mono).tolist() == [0, 0, 1, 0]


def test_before_any_entry_notes_go_to_the_lowest_label():
    pred = pb.closest_pitch(np.array([0, 24, 48]), np.full(3, 24), np.array([50, 70, 60]), np.array([-1, 2, -1]))
    assert pred.tolist() == [0, 0, 1]


def test_ties():
    # Both voices end on the same C4; next onset D4 and B-flat3 are equally close to either voice.
    onset, duration, pitch = np.array([0, 0, 24, 24]), np.full(4, 24), np.array([60, 60, 58, 62])
    entry = np.array([1, 0])
    assert pb.closest_pitch(onset, duration, pitch, entry).tolist() == [1, 0, 0, 0]  # each note: the lower label
    assert pb.closest_pitch(onset, duration, pitch, entry, mono=True).tolist() == [1, 0, 1, 0]  # voices stay in order


def test_mono_falls_back_to_plain_when_an_onset_has_more_notes_than_parts():
    s = song([0, 0, 24, 24, 24], [24] * 5, [48, 72, 50, 70, 74], [1, 0, 1, 0, 0], n_parts=2)
    plain = pb.closest_pitch_song(s)
    np.testing.assert_array_equal(pb.closest_pitch_song(s, mono=True), plain)
    assert plain.tolist() == [1, 0, 1, 0, 0]


def test_accuracy_and_confusion_are_micro_averaged():
    preds = [np.array([0]), np.array([1, 1, 2])]
    labels = [np.array([0]), np.array([0, 2, 2])]
    assert pb.accuracy(preds, labels) == pytest.approx(0.5)  # 2 of 4 notes, not the mean of 1.0 and 1/3
    assert pb.accuracy(np.array([1, 2]), np.array([1, 1])) == pytest.approx(0.5)
    cm = pb.confusion_matrix(preds, labels, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 0, 0], [0, 1, 1]])  # rows: true part, columns: predicted
