"""The baseline a synthesis model has to beat: each validation clip's score notes, timed as the
recording plays them, rendered by FluidSynth's violin and scored by the model's own metric (the
log-mel MSE against the recording). A model that cannot beat it draws worse mels than a General
MIDI violin playing the right notes at the right times.

All clips go through one FluidSynth call, a gap apart, since loading the SoundFont costs seconds
and a clip milliseconds. Each rendering is brought to its recording's loudness (RMS) first: the
SoundFont's level is arbitrary, and a quiet rendering would lose on loudness alone.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assets.violin.clips import CLIP_SAMPLES
from assets.violin.render import VIOLIN, render
from models.deep_performer import Clip
from models.mel import HOP, SAMPLE_RATE, log_mel

LABEL = "FluidSynth rendering, aligned"
TICKS_PER_SECOND = 1000  # the clips' MIDI file runs at 60 qpm with 1000 ticks per quarter: a tick is a millisecond
GAP_SECONDS = 1.0  # after each clip, for its last notes' release


def aligned_notes(clip: Clip, velocity: np.ndarray, transpose: int = 0) -> np.ndarray:
    """(n, 4) onset, offset (ms from the clip's start), pitch and velocity of the notes sounding in
    ``clip`` at their aligned frames; a note the clip's end cuts to nothing is left out."""
    ms = np.rint(np.stack([clip.onset_frame, clip.offset_frame]) * (TICKS_PER_SECOND * HOP / SAMPLE_RATE))
    notes = np.column_stack([ms[0], ms[1], clip.pitch + transpose, velocity]).astype(np.int64)
    return notes[notes[:, 1] > notes[:, 0]]


def render_clips(
    clips: Sequence[Clip], velocities: Sequence[np.ndarray], transposes: Sequence[int], soundfont: str | Path
) -> list[np.ndarray]:
    """Each clip's aligned notes rendered by FluidSynth (``CLIP_SAMPLES`` of mono audio at
    ``SAMPLE_RATE``), ``transposes`` semitones each (-1 for a recording in baroque tuning)."""
    span = round((CLIP_SAMPLES / SAMPLE_RATE + GAP_SECONDS) * TICKS_PER_SECOND)
    notes = np.concatenate([
        aligned_notes(clip, np.asarray(velocity), transpose) + [k * span, k * span, 0, 0]
        for k, (clip, velocity, transpose) in enumerate(zip(clips, velocities, transposes))
    ])  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rendering-") as tmp:
        audio = render(notes, 60.0, soundfont, Path(tmp) / "clips.wav", program=VIOLIN, resolution=TICKS_PER_SECOND)
    step = span * SAMPLE_RATE // TICKS_PER_SECOND
    audio = np.pad(audio, (0, max(0, len(clips) * step - len(audio))))
    return [audio[k * step : k * step + CLIP_SAMPLES] for k in range(len(clips))]


def at_level_of(audio: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``audio`` scaled to the RMS of ``reference`` (unchanged when either is silent)."""
    power, target = float(np.mean(audio**2)), float(np.mean(reference**2))
    return audio * np.sqrt(target / power) if power > 0 and target > 0 else audio


def rendering_mse(clips: Sequence[Clip], renderings: Sequence[np.ndarray], recordings: Sequence[np.ndarray]) -> float:
    """The log-mel MSE of the renderings, each at its recording's loudness, against the clips' mels:
    the mean over all frames and bins, as ``models.deep_performer.mel_mse`` takes it."""
    errors = [
        (log_mel(at_level_of(rendering, recording))[: len(clip.mel)] - clip.mel) ** 2
        for clip, rendering, recording in zip(clips, renderings, recordings)
    ]
    return float(np.concatenate([e.ravel() for e in errors]).mean())
