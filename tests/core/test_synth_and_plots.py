from pathlib import Path

import muspy
import numpy as np
import pytest
from PIL import Image

from assets.core import plots
from assets.core.synth import RenderError, render_midi
from assets.core.tools import soundfont_path

needs_fluidsynth = pytest.mark.skipif(soundfont_path() is None, reason="MuseScore General SoundFont not installed")


def _melody() -> muspy.Music:
    """Eight eighth notes at 120 qpm: two seconds of violin."""
    notes = [muspy.Note(time=i * 12, pitch=60 + i, duration=12, velocity=90) for i in range(8)]
    return muspy.Music(resolution=24, tempos=[muspy.Tempo(0, 120.0)], tracks=[muspy.Track(program=40, notes=notes)])


@needs_fluidsynth
def test_render_midi_makes_audible_mono_audio_of_the_right_length(tmp_path: Path):
    midi = tmp_path / "m.mid"
    muspy.write_midi(midi, _melody())
    audio = render_midi(midi, tmp_path / "out" / "m.wav", soundfont_path(), sample_rate=16_000)
    assert audio.ndim == 1 and (tmp_path / "out" / "m.wav").exists()
    assert np.abs(audio).max() > 0.01
    # two seconds of notes plus the release tail FluidSynth renders until the voices die out
    assert 2.0 <= len(audio) / 16_000 <= 5.5


@needs_fluidsynth
def test_render_midi_reports_a_file_that_is_not_midi(tmp_path: Path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file at all")
    with pytest.raises(RenderError, match="could not render"):
        render_midi(bad, tmp_path / "bad.wav", soundfont_path())


def test_plots_are_png_images_of_sensible_size(tmp_path: Path):
    roll = plots.pianoroll_png(_melody(), "melody", max_beats=2)
    matrix = plots.matrix_png(np.array([[5, 1], [2, 7]]), ["a", "b"], ["a", "b"], title="t", xlabel="x", ylabel="y", colour_label="c", fmt="{:.0f}")
    for png in (roll, matrix):
        (tmp_path / "p.png").write_bytes(png)
        with Image.open(tmp_path / "p.png") as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 150


def test_save_pngs_writes_each_figure_under_its_name(tmp_path: Path):
    folder = plots.save_pngs({"a.png": b"\x89PNG a", "b.png": b"\x89PNG b"}, tmp_path / "new" / "plots")
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png"]
    assert (folder / "b.png").read_bytes() == b"\x89PNG b"
