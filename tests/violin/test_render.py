from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from assets.core.tools import soundfont_path
from assets.violin.render import LengthMismatch, check_length, render, score_seconds, tempo_for

FLUID_R3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
# FluidR3's uncompressed samples load in well under a second; the .sf3 takes seconds to decompress
SOUNDFONT = str(FLUID_R3) if FLUID_R3.is_file() else soundfont_path()
needs_fluidsynth = pytest.mark.skipif(SOUNDFONT is None, reason="no General MIDI SoundFont installed")


def test_tempo_for_matches_the_published_tempos(sample_dir: Path, sample_recordings, sample_notes):
    for recording in sample_recordings:
        published = float((sample_dir / "tempos" / f"{recording.id}.txt").read_text())
        qpm = tempo_for(sample_notes[recording.id], recording.seconds)
        assert qpm == pytest.approx(published, rel=1e-6), recording.id
        assert score_seconds(sample_notes[recording.id], qpm) == pytest.approx(recording.seconds, rel=1e-12)
        check_length(sample_notes[recording.id], published, recording.seconds)


def test_check_length_refuses_scores_that_cannot_fit_their_recording(sample_recordings, sample_notes):
    mov6 = sample_notes[sample_recordings[0].id]  # 288 quarter notes
    with pytest.raises(LengthMismatch, match=r"outside 20\.\.400"):
        check_length(mov6, tempo_for(mov6, 1000.0), 1000.0)  # 17 qpm
    with pytest.raises(LengthMismatch, match=r"outside 20\.\.400"):
        check_length(mov6, tempo_for(mov6, 20.0), 20.0)  # 864 qpm
    with pytest.raises(LengthMismatch, match=r"lasts 105\.00 s, the recording 141\.00 s"):
        check_length(mov6, tempo_for(mov6, 105.0), 141.0)
    with pytest.raises(LengthMismatch, match="without notes"):
        tempo_for(np.zeros((0, 4), np.int64), 10.0)


def _pitch_class(audio: np.ndarray, sr: int) -> int:
    """Pitch class (0 = C) holding the most spectral energy above 100 Hz."""
    power = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / sr)
    keep = freqs > 100
    classes = np.round(12 * np.log2(freqs[keep] / 440.0) + 69).astype(int) % 12
    return int(np.bincount(classes, weights=power[keep], minlength=12).argmax())


@needs_fluidsynth
def test_render_lasts_exactly_the_score_and_sounds_the_notes(tmp_path: Path):
    sr = 16_000
    # A4 for two beats, two beats of rest, A4 again; 120 qpm -> 3 s
    notes = np.array([[0, 48, 69, 90], [96, 144, 69, 90]], dtype=np.int64)
    audio = render(notes, 120.0, SOUNDFONT, tmp_path / "out" / "a.wav", sample_rate=sr)
    assert audio.dtype == np.float32 and audio.shape == (3 * sr,)
    on_disk, rate = sf.read(tmp_path / "out" / "a.wav", dtype="float32")
    assert rate == sr
    np.testing.assert_array_equal(on_disk, audio)
    note, rest = audio[:sr], audio[int(1.6 * sr) : 2 * sr]
    assert np.sqrt(np.mean(note**2)) > 10 * np.sqrt(np.mean(rest**2))
    assert _pitch_class(note, sr) == 9  # A
    lowered = render(notes, 120.0, SOUNDFONT, tmp_path / "low.wav", sample_rate=sr, transpose=-1)
    assert _pitch_class(lowered[:sr], sr) == 8  # G sharp: baroque tuning


@needs_fluidsynth
def test_render_at_the_slice_tempo_has_the_slice_length(tmp_path: Path, sample_recordings, sample_notes):
    notes = sample_notes[sample_recordings[0].id]
    excerpt = notes[notes[:, 1] <= 432]  # the first four bars of mov6 (4.5 quarters each)
    qpm = tempo_for(excerpt, 6.5)
    audio = render(excerpt, qpm, SOUNDFONT, tmp_path / "x.wav")
    assert len(audio) == 6.5 * 16_000
    assert np.abs(audio[-1600:]).max() > 1e-3  # sounding up to the very end: the last note ends there
