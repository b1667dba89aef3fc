import io
import shutil
from pathlib import Path

import librosa
import numpy as np
import pytest
from PIL import Image

from assets.core.tools import soundfont_path
from assets.violin import alignment as al
from assets.violin import humanize
from assets.violin.render import LengthMismatch, render, tempo_for
from assets.violin.scores import RESOLUTION, read_notes_csv
from assets.violin.sources import SAMPLE_RATE, load_slice, sample_manifest

SR = SAMPLE_RATE
needs_soundfonts = pytest.mark.skipif(
    soundfont_path() is None or not Path(humanize.FLUID_R3).is_file() or shutil.which("fluidsynth") is None,
    reason="needs fluidsynth, MuseScore General and FluidR3 GM",
)


def tones(onsets: np.ndarray, offsets: np.ndarray, pitches: np.ndarray, harmonics: tuple[float, ...],
          length_s: float, gains: np.ndarray | None = None, decay: float = 2.0) -> np.ndarray:
    """Additive-synthesis notes: a stand-in instrument whose timbre is set by ``harmonics``, each
    note at its gain and fading at ``decay`` per second (plucked at 2, bowed near 0)."""
    audio = np.zeros(round(length_s * SR))
    for on, off, pitch, gain in zip(onsets, offsets, pitches, np.ones(len(onsets)) if gains is None else gains):
        t = np.arange(round((off - on + 0.05) * SR)) / SR
        envelope = np.minimum(t / 0.01, 1.0) * np.exp(-decay * t) * np.clip((off - on + 0.05 - t) / 0.05, 0.0, 1.0)
        wave = sum(a * np.sin(2 * np.pi * (k + 1) * librosa.midi_to_hz(pitch) * t) for k, a in enumerate(harmonics))
        start = round(on * SR)
        audio[start:start + len(t)] += (gain * envelope * wave)[: len(audio) - start]
    return (0.2 * audio / np.abs(audio).max()).astype(np.float32)


@pytest.fixture(scope="module")
def warped_melody():
    """A 60-note melody played by a humanized performer (tempo within ±15 %, 15 ms jitter) in one
    timbre and rendered deadpan at the matching single tempo in another: true times known."""
    rng = np.random.default_rng(7)
    durations = rng.choice([6, 12, 12, 24], 60)
    onsets = np.concatenate([[0], np.cumsum(durations)[:-1]])
    notes = np.column_stack([onsets, onsets + durations, rng.integers(55, 88, 60), np.full(60, 80)])
    score = humanize.Score("melody", notes, qpm=132.0)
    played = humanize.humanize(score, seed=3, lead_in_s=(0.0, 0.0))
    length = float(played.offsets_s.max()) + 0.2
    qpm = tempo_for(notes, length)
    seconds = notes[:, :2] * 60.0 / (qpm * RESOLUTION)
    recording = tones(played.onsets_s, played.offsets_s, played.pitches, (1.0, 0.6, 0.4, 0.2), length)
    recording += rng.normal(0.0, 1e-3, len(recording)).astype(np.float32)  # a recording's noise floor
    rendering = tones(seconds[:, 0], seconds[:, 1], notes[:, 2], (1.0, 0.3, 0.5, 0.1, 0.1), length)
    return played, recording, rendering, seconds


@pytest.mark.parametrize("align", [al.align_v1, al.align_v2])
def test_aligners_recover_a_known_time_warp(warped_melody, align):
    played, recording, rendering, seconds = warped_melody
    starts, ends, path = align(recording, rendering, seconds[:, 0], seconds[:, 1])
    error = np.abs(starts - played.onsets_s)
    # v1 reads starts off 32 ms frames, rounded up; v2 interpolates between 16 ms frames
    limit = 0.032 if align is al.align_v1 else 0.012
    assert np.mean(error) < limit and np.max(error) < 0.1
    assert np.all(np.diff(starts) >= 0) and np.all(ends >= starts)
    assert np.all(np.diff(path, axis=0) >= 0) and np.all(np.diff(path, axis=0).sum(axis=1) >= 1)


def test_v2_holds_on_a_slow_movement_with_a_ritardando_held_chords_and_a_noisy_lead_in_and_tail():
    """Where one tempo fits worst: 44-48 qpm slowing to less than half at the end, softening to a
    third of the velocity, the final chord and another note held twice as long, 2.5 s of room noise
    25 dB below the music before the first note and after the last. Compared by level, the lead-in
    noise matched the rendering's first note and v2 put that note 2.3 s early."""
    rng = np.random.default_rng(11)
    durations = rng.choice([12, 24, 24, 48], 40)
    onsets = np.concatenate([[0], np.cumsum(durations)[:-1]])
    notes = np.column_stack([onsets, onsets + durations, rng.integers(60, 84, 40), np.full(40, 80)])
    score = humanize.with_final_chord(humanize.Score("slow", notes, qpm=48.0))
    played = humanize.humanize(score, seed=11, tempo_range=(44.0, 48.0), ritardando=(0.45, 0.45),
                               diminuendo=(0.3, 0.3), fermatas=2, fermata_hold=(2.0, 2.0), lead_in_s=(2.5, 2.5),
                               tail_s=(2.5, 2.5))
    recording = tones(played.onsets_s, played.offsets_s, played.pitches, (1.0, 0.6, 0.4, 0.2), played.end_s,
                      gains=(played.velocities / 80.0) ** 2, decay=0.2)
    music = slice(round(played.onsets_s[0] * SR), round(played.offsets_s.max() * SR))
    recording = humanize.with_room_noise(recording, music, -25.0, np.random.default_rng(0))
    qpm = tempo_for(score.notes, played.end_s)
    seconds = score.notes[:, :2] * 60.0 / (qpm * RESOLUTION)
    rendering = tones(seconds[:, 0], seconds[:, 1], score.notes[:, 2], (1.0, 0.3, 0.5, 0.1, 0.1), played.end_s,
                      decay=0.2)
    starts, ends, _ = al.align_v2(recording, rendering, seconds[:, 0], seconds[:, 1])
    error = np.abs(starts - played.onsets_s)
    assert error.max() < 0.3 and error.mean() < 0.02
    assert np.all(np.diff(starts) >= 0) and np.all(ends >= starts)


def test_noise_and_silence_look_alike_and_loudness_does_not_matter():
    rng = np.random.default_rng(0)
    noise = -60.0 + 3.0 * rng.standard_normal((al.CQT_BINS, 60))  # a recording's noise floor
    chord = np.full(al.CQT_BINS, -80.0)
    chord[[30, 51, 66, 90]] = [-20.0, -24.0, -30.0, -35.0]
    recording_db = np.maximum(noise, np.where(np.arange(60) >= 20, chord[:, None], -80.0))  # 20 frames of noise
    rendering_db = np.column_stack([np.full((al.CQT_BINS, 5), -80.0), chord[:, None] + 15.0])  # silence, loud chord
    recording, rendering = al.spectral_shape(recording_db, rendering_db, al.noise_floor(recording_db))
    assert np.linalg.norm(recording[:20], axis=1).max() < 0.3 and np.all(rendering[:5] == 0.0)
    np.testing.assert_allclose(np.linalg.norm(recording[20:], axis=1), 1.0)  # the chord, 15 dB apart,
    np.testing.assert_allclose(np.linalg.norm(rendering[5:], axis=1), 1.0)  # has one shape in both
    assert np.min(recording[20:] @ rendering[5]) > 0.97


def test_published_lag_is_v1_frame_rounding_plus_half_a_tick():
    onsets = np.array([0.0, 0.010, 0.031, 9.0])
    lag = al.published_lag(onsets, qpm=60.0, recording_s=10.24)
    half_tick = 60.0 / (60.0 * RESOLUTION) / 2  # 20.8 ms
    # 10.24 s are 320 hops and 321 frames: score times are read at 31.35 frames a second, 9 s in frame 282
    np.testing.assert_allclose(lag, np.array([0.032, 0.022, 0.001, 283 * 0.032 - 9.0]) + half_tick)
    slow, fast = (al.published_lag(onsets, qpm, 10.24) for qpm in (40.0, 160.0))
    np.testing.assert_allclose(slow - fast, 60.0 / (RESOLUTION * 2) * (1 / 40.0 - 1 / 160.0))
    spread = al.published_lag(np.linspace(0.0, 10.24, 1001), qpm=1e9, recording_s=10.24)
    assert 0.030 < spread.mean() < 0.034  # half a frame, and half a frame more from the scaling on average


def test_v2_is_closer_to_the_truth_than_v1(warped_melody):
    played, recording, rendering, seconds = warped_melody
    errors = [np.abs(align(recording, rendering, seconds[:, 0], seconds[:, 1])[0] - played.onsets_s).mean()
              for align in (al.align_v1, al.align_v2)]
    assert errors[1] < 0.6 * errors[0]


def test_banded_dtw_with_a_full_band_is_librosas_dtw():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(57, 6))
    _, expected = librosa.sequence.dtw(x.T, y.T)
    np.testing.assert_array_equal(al.banded_dtw(x, y, al.Band.full(40, 57)), expected[::-1])


def _warped_sequences(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth random features y, and x = y under a known monotone warp with tempo within ±20 %."""
    rng = np.random.default_rng(seed)
    m = int(n * 0.9)
    y = np.cumsum(rng.normal(size=(m, 8)), axis=0)
    y = np.stack([np.convolve(col, np.ones(9) / 9, mode="same") for col in y.T], axis=1)
    rate = 1.0 + 0.2 * np.sin(np.linspace(0, 6 * np.pi, n))
    truth = np.cumsum(rate)
    truth = (truth - truth[0]) * (m - 1) / (truth[-1] - truth[0])
    x = np.stack([np.interp(truth, np.arange(m), col) for col in y.T], axis=1)
    return x + 0.05 * rng.normal(size=x.shape), y, truth


def test_multiscale_dtw_follows_a_known_warp_in_memory_linear_in_length():
    finest = {}
    for n in (2000, 8000):
        x, y, truth = _warped_sequences(n)
        path, cells = al.multiscale_dtw(x, y)
        assert np.abs(al.warp(path[:, ::-1], np.arange(n)) - truth).max() < 3  # rows -> columns
        assert cells[0] <= al.COARSEST_FRAMES**2
        finest[n] = cells[-1]
        assert cells[-1] < 0.02 * len(x) * len(y)  # a full DTW would store every one of them
    assert 3.6 < finest[8000] / finest[2000] < 4.4  # four times longer, four times the cells


def test_band_around_covers_the_projected_path_and_stays_monotone():
    coarse = np.array([[0, 0], [1, 0], [2, 1], [3, 2], [3, 3], [4, 4]])
    band = al.band_around(coarse, factor=4, n_rows=20, n_cols=19, radius=2)
    for i, j in coarse:
        for r in range(4 * i, min(4 * i + 4, 20)):
            assert band.lo[r] <= 4 * j and min(4 * j + 4, 19) <= band.hi[r]
    assert np.all(np.diff(band.lo) >= 0) and np.all(np.diff(band.hi) >= 0)
    assert band.lo[0] == 0 and band.hi[-1] == 19
    assert band.cells == int((band.hi - band.lo).sum()) < 20 * 19


def test_humanize_is_seeded_bounded_and_keeps_chords_together():
    notes = np.array([[0, 24, 67, 80], [0, 24, 74, 80], [24, 36, 71, 80], [36, 48, 72, 80], [48, 96, 74, 80]])
    notes = np.concatenate([notes + [96 * k, 96 * k, 0, 0] for k in range(12)])
    score = humanize.Score("chords", notes, qpm=120.0)
    a, b, c = humanize.humanize(score, 1), humanize.humanize(score, 1), humanize.humanize(score, 2)
    np.testing.assert_array_equal(a.onsets_s, b.onsets_s)
    assert not np.allclose(a.onsets_s, c.onsets_s)
    together = notes[1:, 0] == notes[:-1, 0]
    np.testing.assert_array_equal(a.onsets_s[1:][together], a.onsets_s[:-1][together])
    assert np.all(np.diff(a.onsets_s) >= 0) and np.all(a.offsets_s > a.onsets_s)
    assert 0.2 <= a.onsets_s[0] <= 1.5  # the lead-in
    deadpan = notes[-1, 1] / RESOLUTION * 0.5
    assert deadpan / 1.15 - 0.05 < a.offsets_s[-1] - a.onsets_s[0] < deadpan / 0.85 + 0.05


def test_excerpt_shifts_to_zero_and_cuts_notes_at_its_end():
    notes = np.array([[0, 24, 60, 80], [24, 72, 62, 80], [48, 60, 64, 80], [96, 120, 65, 80]])
    part = humanize.excerpt(humanize.Score("s", notes, 100.0), start_beat=1, n_beats=2)
    np.testing.assert_array_equal(part.notes, [[0, 48, 62, 80], [24, 36, 64, 80]])
    with pytest.raises(ValueError, match="no notes"):
        humanize.excerpt(humanize.Score("s", notes, 100.0), start_beat=3, n_beats=1)


def test_corpus_score_is_a_violin_line():
    score = humanize.corpus_score(*humanize.CORPUS_PIECES[0])
    assert len(score.notes) > 50 and np.all(np.diff(score.notes[:, 0]) >= 0)
    assert np.all(score.notes[:, 1] > score.notes[:, 0])
    assert 55 <= score.notes[:, 2].min() and score.notes[:, 2].max() <= 100  # G3 to E7


@needs_soundfonts
def test_render_score_sounds_notes_on_time(tmp_path):
    """FluidSynth plays a coarse-resolution note half a tick early; render_score does not."""
    notes = np.array([[6, 12, 69, 100]])  # one quarter at 6 ticks per quarter, 60 qpm: 1.0 s
    coarse = render(notes, 60.0, humanize.FLUID_R3, tmp_path / "coarse.wav", resolution=6)
    fine = al.render_score(notes, 60.0, humanize.FLUID_R3, tmp_path / "fine.wav", resolution=6)
    onset = {name: np.argmax(np.abs(a) > 0.01 * np.abs(a).max()) / SR for name, a in (("coarse", coarse), ("fine", fine))}
    assert 0.995 <= onset["fine"] <= 1.03
    assert onset["fine"] - onset["coarse"] > 0.06  # half of a 167 ms tick


@needs_soundfonts
def test_synthetic_pair_renders_a_performance_with_known_onsets():
    notes = np.array([[12 * k, 12 * k + 12, 62 + (k % 8), 80] for k in range(24)])
    pair = humanize.synthetic_pair(humanize.Score("scale", notes, 120.0), 5, soundfont_path())
    assert len(pair.recording) == len(pair.rendering) == round(pair.performance.offsets_s.max() * SR)
    starts, _, _ = al.align_v2(pair.recording, pair.rendering, pair.score_onsets_s, pair.score_offsets_s)
    assert np.abs(starts - pair.performance.onsets_s).mean() < 0.025


@needs_soundfonts
def test_a_hard_synthetic_pair_opens_and_closes_in_room_noise():
    notes = np.array([[12 * k, 12 * k + 12, 62 + (k % 8), 80] for k in range(24)])
    score = humanize.with_final_chord(humanize.Score("scale", notes, 120.0))
    pair = humanize.synthetic_pair(score, 5, soundfont_path(), noise_db=(-30.0, -30.0), **humanize.HARD)
    played = pair.performance
    assert len(pair.recording) == len(pair.rendering) == round(played.end_s * SR)
    assert played.end_s - played.offsets_s.max() >= 0.5
    first, last = round(played.onsets_s[0] * SR), round(played.offsets_s.max() * SR)
    rms = {part: np.sqrt(np.mean(pair.recording[cut].astype(np.float64) ** 2))
           for part, cut in (("lead-in", slice(0, first - SR // 20)), ("music", slice(first, last)))}
    assert rms["lead-in"] / rms["music"] == pytest.approx(10 ** (-30 / 20), rel=0.2)
    starts, _, _ = al.align_v2(pair.recording, pair.rendering, pair.score_onsets_s, pair.score_offsets_s)
    assert np.abs(starts - played.onsets_s).max() < 0.3


@pytest.fixture(scope="module")
def movements(sample_dir, tmp_path_factory):
    """The sample's three movements: recording slice, rendering, note times, published alignment,
    rendering tempo."""
    if soundfont_path() is None:
        pytest.skip("MuseScore General SoundFont not installed")
    out = tmp_path_factory.mktemp("renders")
    found = {}
    for recording in sample_manifest(sample_dir.parent):
        notes = read_notes_csv(sample_dir / "notes" / f"{recording.id}.csv")
        qpm = tempo_for(notes, recording.seconds)
        found[recording.id] = (
            load_slice(recording.path, recording.start, recording.end),
            al.render_score(notes, qpm, soundfont_path(), out / f"{recording.id}.wav"),
            notes[:, :2] * 60.0 / (qpm * RESOLUTION),
            al.read_alignment_csv(sample_dir / "alignments" / f"{recording.id}.csv"),
            qpm,
        )
    assert len(found) == 3
    return found


@pytest.mark.parametrize("movement", ["john-garner_bwv1002_mov6", "john-garner_bwv1002_mov7",
                                      "john-garner_bwv1002_mov8"])
def test_v1_reproduces_the_published_alignments(movements, movement):
    recording, rendering, seconds, published, _ = movements[movement]
    assert len(published) == len(seconds)
    starts, ends, _ = al.align_v1(recording, rendering, seconds[:, 0], seconds[:, 1])
    agreement = al.onset_agreement(starts, published[:, 0])
    assert agreement["median_abs_s"] <= 0.032 + 1e-6
    assert agreement["within_100ms"] >= 0.95
    assert np.all(ends >= starts)


def test_v2_finds_the_notes_of_the_published_alignments(movements):
    """Once their modeled lag is removed: the published starts are v1's, late by its frame rounding,
    so closer agreement than half a frame is not expected of a method that does not round."""
    for recording, rendering, seconds, published, qpm in movements.values():
        starts, ends, _ = al.align_v2(recording, rendering, seconds[:, 0], seconds[:, 1])
        lag = al.published_lag(seconds[:, 0], qpm, len(recording) / SR)
        agreement = al.onset_agreement(starts + lag, published[:, 0])
        assert agreement["median_abs_s"] <= 0.016 and agreement["within_100ms"] >= 0.98
        assert np.all(np.diff(starts) >= 0) and np.all(ends >= starts)


def test_plot_alignment_is_a_png_of_the_spectrogram_with_notes():
    rng = np.random.default_rng(1)
    spectrogram = rng.uniform(-80, 0, size=(al.CQT_BINS, 300))
    starts = np.arange(10) * 0.9
    png = al.plot_alignment(spectrogram, starts, starts + 0.5, rng.integers(55, 90, 10), title="aligned")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = Image.open(io.BytesIO(png)).size
    assert width > 800 and height > 200


def test_onset_agreement_counts_grid_times_at_the_tolerance_as_within():
    result = al.onset_agreement(np.array([0.0, 0.032, 0.1, 0.5]), np.zeros(4))
    assert result["within_25ms"] == 0.25 and result["within_50ms"] == 0.5 and result["within_100ms"] == 0.75
    assert result["median_abs_s"] == pytest.approx(0.066) and result["mean_abs_s"] == pytest.approx(0.158)


def test_align_notes_reads_tick_notes_at_the_rendering_tempo():
    notes = np.array([[24 * i, 24 * i + 20, 60 + 2 * (i % 5), 80] for i in range(12)])  # one note a beat
    onsets, offsets = notes[:, 0] / 48.0, notes[:, 1] / 48.0  # 120 qpm: 48 ticks a second
    audio = tones(onsets, offsets, notes[:, 2], (1.0, 0.5, 0.25), 7.0)
    starts, ends = al.align_notes("v2", audio, audio, notes, qpm=120.0)
    np.testing.assert_allclose(starts, onsets, atol=0.02)
    np.testing.assert_allclose(ends, offsets, atol=0.02)
    png = al.alignment_png(audio, starts, ends, notes[:, 2], title="aligned", seconds=4.0)
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_published_agreement_compares_only_the_same_notes(tmp_path):
    csv = tmp_path / "published.csv"
    csv.write_text("start,end\n0.0,0.5\n0.5,1.0\n1.0,1.5\n")
    agreement = al.published_agreement(csv, np.array([0.01, 0.56, 1.2]))
    assert agreement["within_25ms"] == pytest.approx(1 / 3) and agreement["within_100ms"] == pytest.approx(2 / 3)
    with pytest.raises(al.NoteCountMismatch, match="3 notes, the score 2"):
        al.published_agreement(csv, np.array([0.0, 0.5]))


def test_a_rendering_at_an_implausible_tempo_is_refused_before_any_audio(tmp_path):
    notes = np.array([[0, 24, 60, 80]])
    with pytest.raises(LengthMismatch, match="qpm"):
        al.rendering_for(notes, 600.0, False, "/no/such.sf3", tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


@needs_soundfonts
def test_a_baroque_recording_is_rendered_a_semitone_down(tmp_path):
    notes = np.array([[0, 48, 69, 80], [48, 96, 71, 80]])
    qpm, transpose, audio = al.rendering_for(notes, 2.0, True, soundfont_path(), tmp_path / "x.wav")
    assert qpm == pytest.approx(120.0) and transpose == -1 and len(audio) == 2 * SR
