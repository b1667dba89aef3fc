import math
import warnings

import muspy
import numpy as np
import pytest

from models.mmt.encoding import RESOLUTION, encode_music
from models.mmt.metrics import METRICS, compare, excerpt, sample_metrics

Q = RESOLUTION  # one quarter note
EMPTY = np.array([[0, 0, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0], [4, 0, 0, 0, 0, 0]])  # a generated song without notes


def codes_of(notes, program=0):
    """Codes of one track of (onset, pitch, duration) notes in ticks at RESOLUTION."""
    track = muspy.Track(program=program, notes=[muspy.Note(t, p, d, 64) for t, p, d in notes])
    return encode_music(muspy.Music(resolution=RESOLUTION, tracks=[track]))


C_MAJOR = codes_of([(i * Q, p, Q) for i, p in enumerate((60, 62, 64, 65, 67, 69, 71))])
ONLY_C = codes_of([(0, 48, Q), (Q, 60, Q), (2 * Q, 72, Q)])


def test_c_major_scale():
    scores = sample_metrics(C_MAJOR)
    assert scores["scale_consistency"] == 1.0
    assert scores["pitch_class_entropy"] == pytest.approx(math.log2(7))
    assert scores["n_notes"] == 7 and scores["n_beats"] == 7


def test_single_pitch_class_has_zero_entropy():
    assert sample_metrics(ONLY_C)["pitch_class_entropy"] == 0.0


def test_groove_consistency_over_four_beat_measures():
    # half notes on beats 0 and 2 of four measures; the last note ends inside the fourth measure
    steady = [(m * 4 * Q + b * Q, 60, 2 * Q) for m in range(4) for b in (0, 2)]
    steady[-1] = (steady[-1][0], 60, Q)
    assert sample_metrics(codes_of(steady))["groove_consistency"] == 1.0
    # one extra onset in the second measure differs from its two neighbours at one position each
    varied = sorted(steady + [(4 * Q + Q, 64, Q)])
    assert sample_metrics(codes_of(varied))["groove_consistency"] == pytest.approx(1 - 2 / (4 * Q * 3))


def test_metrics_use_only_the_first_beats():
    notes = [(b * Q, 60, Q) for b in range(0, 64, 4)] + [(63 * Q, 72, 2 * Q), (70 * Q, 62, Q)]
    codes = codes_of(notes)
    clip = excerpt(codes)
    onsets = [n.time for n in clip.tracks[0].notes]
    assert max(onsets) == 63 * Q and clip.get_end_time() == 64 * Q  # the crossing note is shortened
    assert sample_metrics(codes)["pitch_class_entropy"] == 0.0  # the D at beat 70 is outside
    shares = np.array([17, 1]) / 18  # sixteen C4s and a C5, then the D
    assert sample_metrics(codes, n_beats=128)["pitch_class_entropy"] == pytest.approx(-(shares * np.log2(shares)).sum())
    assert sample_metrics(codes)["n_notes"] == len(notes)  # length counts the whole sample


def test_compare_means_gaps_and_empty_samples():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" warnings either
        result = compare([C_MAJOR, EMPTY], [C_MAJOR, ONLY_C])
    assert result["generated_pitch_class_entropy"] == pytest.approx(math.log2(7))  # the empty sample has none
    assert result["truth_pitch_class_entropy"] == pytest.approx(math.log2(7) / 2)
    assert result["gap_pitch_class_entropy"] == pytest.approx(math.log2(7) / 2)
    assert result["generated_scale_consistency"] == 1.0 and result["gap_scale_consistency"] == 0.0
    assert result["generated_n_notes"] == 3.5 and result["generated_n_beats"] == 3.5  # the empty one counts as 0
    assert result["generated_empty"] == 1 and result["truth_empty"] == 0
    assert set(result) == {f"{side}_{m}" for side in ("generated", "truth", "gap") for m in METRICS} | {
        "generated_n_notes", "generated_n_beats", "generated_empty", "truth_empty"
    }


def test_compare_all_empty_is_nan_not_an_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compare([EMPTY, EMPTY[:1]], [C_MAJOR])
    assert all(math.isnan(result[f"generated_{m}"]) and math.isnan(result[f"gap_{m}"]) for m in METRICS)
    assert result["generated_empty"] == 2 and result["generated_n_notes"] == 0.0
