from pathlib import Path

import librosa
import numpy as np
import pytest

from assets.core.tools import soundfont_path
from assets.violin import alignment
from assets.violin import confidence as cf
from assets.violin.scores import RESOLUTION, read_notes_csv
from assets.violin.sources import SAMPLE_RATE, load_slice

SR = SAMPLE_RATE


def tones(onsets: np.ndarray, offsets: np.ndarray, pitches: np.ndarray, harmonics: tuple[float, ...],
          length_s: float) -> np.ndarray:
    """Additive-synthesis notes whose timbre is set by ``harmonics``."""
    audio = np.zeros(round(length_s * SR))
    for on, off, pitch in zip(onsets, offsets, pitches):
        t = np.arange(round((off - on) * SR)) / SR
        envelope = np.minimum(t / 0.01, 1.0) * np.clip((off - on - t) / 0.02, 0.0, 1.0)
        wave = sum(a * np.sin(2 * np.pi * (k + 1) * librosa.midi_to_hz(pitch) * t) for k, a in enumerate(harmonics))
        start = round(on * SR)
        audio[start:start + len(t)] += (envelope * wave)[: len(audio) - start]
    return (0.2 * audio / np.abs(audio).max()).astype(np.float32)


def shifted(starts: np.ndarray, ends: np.ndarray, first: int, count: int,
            seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """The alignment with ``count`` notes from ``first`` moved by ``seconds``: a passage it lost."""
    starts, ends = starts.copy(), ends.copy()
    starts[first:first + count] += seconds
    ends[first:first + count] += seconds
    return starts, ends


@pytest.fixture(scope="module")
def melody():
    """80 notes of a random melody, rendered deadpan in one timbre and played 10 % slower after a
    0.5 s lead-in in another, so the true alignment is known."""
    rng = np.random.default_rng(5)
    durations = rng.choice([6, 12, 12, 24], 80)
    onsets = np.concatenate([[0], np.cumsum(durations)[:-1]])
    notes = np.column_stack([onsets, onsets + durations, rng.integers(55, 88, 80), np.full(80, 80)])
    qpm = 120.0
    score = notes[:, :2] * 60.0 / (qpm * RESOLUTION)
    played = 0.5 + 1.1 * score
    rendering = tones(score[:, 0], score[:, 1], notes[:, 2], (1.0, 0.3, 0.5, 0.1), score.max() + 0.5)
    recording = tones(played[:, 0], played[:, 1], notes[:, 2], (1.0, 0.6, 0.4, 0.2), played.max() + 0.5)
    return recording, rendering, notes, qpm, played[:, 0], played[:, 1]


def test_a_true_alignment_is_trusted_and_a_displaced_passage_is_not(melody):
    recording, rendering, notes, qpm, starts, ends = melody
    true = cf.note_confidence(recording, rendering, starts, ends, notes, qpm)
    assert true.shape == (80,) and true.min() >= 0.8 and true.max() <= 1.0
    assert not cf.flagged(cf.low_stretches(true, starts, ends))

    moved_starts, moved_ends = shifted(starts, ends, 30, 20, 1.5)
    moved = cf.note_confidence(recording, rendering, moved_starts, moved_ends, notes, qpm)
    assert moved[32:48].max() < cf.LOW
    np.testing.assert_allclose(moved[:28], true[:28])  # notes the shift does not reach keep their value
    [stretch] = cf.flagged(cf.low_stretches(moved, moved_starts, moved_ends))
    assert 30 - cf.NEIGHBOURS <= stretch.first <= 32 and stretch.notes >= 16


def test_a_note_aligned_to_an_instant_or_past_the_end_still_has_a_confidence(melody):
    recording, rendering, notes, qpm, starts, ends = melody
    true = cf.note_confidence(recording, rendering, starts, ends, notes, qpm)
    starts, ends = starts.copy(), ends.copy()
    ends[10] = starts[10]  # an instant
    starts[-1] = ends[-1] = len(recording) / SR + 5.0  # past the end of the recording
    values = cf.note_confidence(recording, rendering, starts, ends, notes, qpm)
    assert np.isfinite(values).all()
    untouched = np.r_[0 : 10 - cf.NEIGHBOURS, 11 + cf.NEIGHBOURS : len(notes) - 1 - cf.NEIGHBOURS]
    np.testing.assert_allclose(values[untouched], true[untouched])
    assert values[-1] < true[-1] - 0.2  # the note placed past the end is trusted less


def test_neighbourhood_mean_averages_what_is_there_at_the_ends():
    values = np.array([1.0, 0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(cf.neighbourhood_mean(values, 1), [0.5, 1 / 3, 0, 1 / 3, 0.5])
    np.testing.assert_allclose(cf.neighbourhood_mean(np.array([0.2, 0.4]), 2), [0.3, 0.3])
    assert cf.neighbourhood_mean(np.array([]), 2).shape == (0,)


def test_low_stretches_are_the_runs_under_the_threshold_with_their_time_span():
    values = np.array([0.9, 0.2, 0.3, 0.8, 0.1, 0.1, 0.1, 0.7])
    starts = np.arange(8.0)
    ends = starts + np.array([1, 1, 3, 1, 1, 1, 0.5, 1])  # a note may end after the next one's end
    stretches = cf.low_stretches(values, starts, ends)
    assert stretches == [cf.Stretch(1, 2, 1.0, 5.0), cf.Stretch(4, 3, 4.0, 6.5)]
    assert cf.longest(stretches) == cf.Stretch(4, 3, 4.0, 6.5) and cf.longest([]) is None
    assert cf.flagged(stretches, min_notes=3, min_seconds=10) == [cf.Stretch(4, 3, 4.0, 6.5)]
    assert cf.flagged(stretches, min_notes=4, min_seconds=4) == [cf.Stretch(1, 2, 1.0, 5.0)]
    assert cf.flagged(stretches, min_notes=4, min_seconds=5) == []


def test_summary_gives_the_share_under_the_threshold_and_the_longest_stretch():
    values = np.array([0.9, 0.2, 0.3, 0.8, 0.1, 0.1, 0.1, 0.7, 0.9, 0.6])
    starts = np.arange(10.0)
    result = cf.summary(values, starts, starts + 1)
    assert result == pytest.approx({
        "confidence_mean": 0.47, "confidence_p10": 0.1, "confidence_low_share": 0.5, "confidence_low": cf.LOW,
        "low_stretch_notes": 3, "low_stretch_seconds": 3.0, "low_stretch_start_s": 4.0, "low_stretch_end_s": 7.0,
    })
    clean = cf.summary(np.full(4, 0.9), starts[:4], starts[:4] + 1)
    assert (clean["low_stretch_notes"], clean["low_stretch_seconds"]) == (0, 0.0) and "low_stretch_start_s" not in clean


@pytest.fixture(scope="module")
def mov6(sample_dir: Path, sample_recordings, tmp_path_factory):
    """The sample's shortest movement: recording, rendering, notes, tempo and published alignment."""
    if soundfont_path() is None:
        pytest.skip("MuseScore General SoundFont not installed")
    recording = next(r for r in sample_recordings if r.id == "john-garner_bwv1002_mov6")
    notes = read_notes_csv(sample_dir / "notes" / f"{recording.id}.csv")
    wav = tmp_path_factory.mktemp("render") / f"{recording.id}.wav"
    qpm, _, rendering = alignment.rendering_for(notes, recording.seconds, recording.baroque_tuning,
                                                soundfont_path(), wav)
    published = alignment.read_alignment_csv(sample_dir / "alignments" / f"{recording.id}.csv")
    return load_slice(recording.path, recording.start, recording.end), rendering, notes, qpm, published


def test_a_real_recording_trusts_its_alignments_and_not_a_lost_passage(mov6):
    recording, rendering, notes, qpm, published = mov6
    starts, ends = published.T
    ours = alignment.align_notes("v2", recording, rendering, notes, qpm)
    for aligned in (published.T, ours):  # the dataset's alignment and this project's: any method alike
        values = cf.note_confidence(recording, rendering, *aligned, notes, qpm)
        assert values.mean() >= 0.6 and (values < cf.LOW).mean() <= 0.02
        assert not cf.flagged(cf.low_stretches(values, *aligned))

    moved = shifted(starts, ends, 200, 30, 1.5)
    values = cf.note_confidence(recording, rendering, *moved, notes, qpm)
    assert values[202:228].mean() < cf.LOW
    flagged = cf.flagged(cf.low_stretches(values, *moved))
    assert len(flagged) == 1 and flagged[0].first <= 204 and flagged[0].first + flagged[0].notes >= 226
    summary = cf.summary(values, *moved)
    assert summary["low_stretch_notes"] == flagged[0].notes
    assert summary["low_stretch_start_s"] == pytest.approx(moved[0][flagged[0].first])
