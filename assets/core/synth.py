"""MIDI to audio with the FluidSynth program: how generated and separated music becomes listenable.

FluidSynth runs as a subprocess with a timeout so a pathological file cannot hang a run; the
output is checked, because FluidSynth exits 0 even when it could not read its input.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf


class RenderError(RuntimeError):
    pass


def render_midi(
    midi_path: str | Path,
    wav_path: str | Path,
    soundfont: str | Path,
    sample_rate: int = 22_050,
    gain: float = 0.6,
    timeout: float = 120.0,
) -> np.ndarray:
    """Render ``midi_path`` to a mono WAV at ``wav_path``; returns the samples (float32)."""
    wav_path = Path(wav_path)
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        "fluidsynth", "-ni", "-q", "-g", str(gain), "-r", str(sample_rate), "-F", str(wav_path),
        str(soundfont), str(midi_path),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"fluidsynth took longer than {timeout:.0f} s on {midi_path}") from exc
    if done.returncode != 0 or not wav_path.exists() or wav_path.stat().st_size <= 44:
        raise RenderError(f"fluidsynth could not render {midi_path}: {(done.stderr or done.stdout).strip()[-300:]}")
    audio, rate = sf.read(wav_path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    sf.write(wav_path, mono, rate)
    return mono
