"""The aligned FluidSynth rendering, the baseline a synthesis model must beat."""

from dataclasses import replace

import numpy as np
import pytest

from assets.core.tools import missing_tools, soundfont_path
from assets.deep_performer import rendering
from assets.deep_performer.training_sets import clip_audio
from assets.violin.clips import CLIP_SAMPLES, to_clips
from models.deep_performer import Clip
from models.mel import HOP, SAMPLE_RATE


def test_aligned_notes_are_the_clips_frames_in_milliseconds_without_notes_cut_to_nothing(clip_table):
    clip = to_clips(clip_table.slice(0, 1), ["Anna", "Ben"])[0]
    frames = {"onset_frame": np.array([0, 10, 313]), "offset_frame": np.array([5, 20, 313])}
    clip = replace(clip, pitch=np.array([60, 62, 64]), **frames)
    notes = rendering.aligned_notes(clip, np.array([70, 80, 90]), transpose=-1)
    ms = 1000 * HOP / SAMPLE_RATE  # 16 ms a frame
    assert notes.tolist() == [[0, round(5 * ms), 59, 70], [round(10 * ms), round(20 * ms), 61, 80]]


def test_at_level_of_matches_the_loudness_and_leaves_silence_alone():
    rng = np.random.default_rng(0)
    quiet, loud = 0.01 * rng.standard_normal(1000), 0.5 * rng.standard_normal(1000)
    assert np.sqrt(np.mean(rendering.at_level_of(quiet, loud) ** 2)) == pytest.approx(np.sqrt(np.mean(loud**2)))
    assert not rendering.at_level_of(np.zeros(10), loud).any()


@pytest.mark.skipif(bool(missing_tools()), reason=f"missing system packages {missing_tools()}")
def test_each_clip_sounds_at_its_own_frames_in_one_call():
    one = [np.array([v]) for v in (69, 0.0, 1.0, 0, 0)]  # pitch, beats, frames (set below)
    clip = Clip(np.zeros((313, 80), np.float32), *one, performer=0, qpm=120.0)
    late = replace(clip, onset_frame=np.array([150]), offset_frame=np.array([250]))
    early = replace(clip, onset_frame=np.array([20]), offset_frame=np.array([60]))
    audio = rendering.render_clips([late, early], [np.array([90])] * 2, [0, 0], soundfont_path())
    assert [len(a) for a in audio] == [CLIP_SAMPLES] * 2

    def level(a, frames):  # peak over frames a..b
        return np.abs(a[frames[0] * HOP : frames[1] * HOP]).max()

    assert level(audio[0], (0, 145)) < 1e-3 < level(audio[0], (150, 250))
    assert level(audio[1], (20, 60)) > 1e-3
    assert level(audio[1], (0, 18)) < 1e-3  # the first clip's release ended in the gap
    assert level(audio[1], (200, 313)) < 1e-3


@pytest.mark.skipif(bool(missing_tools()), reason=f"missing system packages {missing_tools()}")
def test_the_rendering_scores_better_with_the_right_pitches(clip_table):
    """The baseline measures the notes, not only the loudness: a tritone off, its error grows."""
    clips = to_clips(clip_table, ["Anna", "Ben"])
    velocities = [np.asarray(v) for v in clip_table.column("velocity").to_pylist()]
    n = len(clips)
    audio = rendering.render_clips(clips * 2, velocities * 2, [0] * n + [6] * n, soundfont_path())
    right, tritone, recordings = audio[:n], audio[n:], clip_audio(clip_table)
    assert rendering.rendering_mse(clips, right, recordings) < rendering.rendering_mse(clips, tritone, recordings)
