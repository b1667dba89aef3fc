"""A score in, a performance out: the Deep Performer's inference path shared by `performance_eval`
and `baton perform`, the FluidSynth rendering that plays in its place while no synthesis model beats
it, the level every performance is written at, and the files a trained model set travels with."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn

from assets.core.plots import plt, to_png
from assets.violin.render import render
from assets.violin.scores import RESOLUTION
from models import deep_performer as dp
from models import vocoder as voc
from models.mel import HOP, SAMPLE_RATE

CONTEXT_FILE = "performers.json"
PEAK_DBFS = -1.0  # the level a performance's loudest sample is written at


def write_context(out_dir: str | Path, performers: Sequence[str], qpms: np.ndarray) -> None:
    """Save what inference needs beside the weights: the performer vocabulary the embedding indexes
    and the training tempos' median, the default for a score without one."""
    context = {"performers": list(performers), "median_qpm": float(np.median(qpms))}
    Path(out_dir, CONTEXT_FILE).write_text(json.dumps(context, indent=2))


def read_context(model_dir: str | Path) -> dict:
    return json.loads(Path(model_dir, CONTEXT_FILE).read_text())


def performer_index(performers: Sequence[str], performer: str | int) -> int:
    """The embedding index of a performer given by name (case-insensitive) or by index."""
    if isinstance(performer, int) or str(performer).isdigit():
        index = int(performer)
        if 0 <= index < len(performers):
            return index
    else:
        names = [p.casefold() for p in performers]
        if str(performer).casefold() in names:
            return names.index(str(performer).casefold())
    known = ", ".join(f"{i}: {p}" for i, p in enumerate(performers))
    raise ValueError(f"unknown performer {performer!r}; the model knows {known}")


def perform(
    notes: np.ndarray,
    qpm: float,
    performer: int,
    synthesis: nn.Module,
    alignment: nn.Module,
    cfg: dp.DeepPerformerConfig,
    vocoder: nn.Module | None = None,
    resolution: int = RESOLUTION,
) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel and audio of score ``notes`` (onset, offset, pitch, velocity in ticks) played by
    ``performer`` at ``qpm``: the alignment model times the notes, the synthesis model draws the
    mel, the HiFi-GAN ``vocoder`` (Griffin-Lim without one) makes it audible."""
    if not len(notes):
        raise ValueError("the score has no notes")
    onset, offset = notes[:, 0] / resolution, notes[:, 1] / resolution
    mel = dp.synthesize(synthesis, alignment, cfg, notes[:, 2], onset, offset - onset, performer, qpm)
    return mel, voc.invert(mel, vocoder)


def render_score(notes: np.ndarray, qpm: float, soundfont: str | Path, resolution: int = RESOLUTION) -> np.ndarray:
    """The score ``notes`` at ``qpm`` played by FluidSynth's violin (16 kHz mono): the baseline a
    synthesis model must beat, and what `baton perform` plays while none does."""
    with tempfile.TemporaryDirectory(prefix="perform-") as tmp:
        return render(notes, qpm, soundfont, Path(tmp) / "score.wav", resolution=resolution)


def at_peak(audio: np.ndarray, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """``audio`` scaled so that its loudest sample sits at ``peak_dbfs``: whatever level a model, a
    vocoder or the SoundFont produced, the file is neither faint nor clipped. Silence stays silent;
    a non-finite sample (a diverged model) raises ValueError rather than becoming a file of noise."""
    audio = np.asarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all():
        raise ValueError(f"{np.count_nonzero(~np.isfinite(audio))} of {audio.size} samples are not finite")
    peak = float(np.abs(audio).max(initial=0.0))
    return audio * np.float32(10 ** (peak_dbfs / 20) / peak) if peak > 0 else audio


def spectrograms_png(panels: Sequence[tuple[str, np.ndarray]], title: str = "") -> bytes:
    """Log-mels stacked on one time axis, so a synthesized clip reads against its recording."""
    seconds = HOP / SAMPLE_RATE
    low, high = min(float(m.min()) for _, m in panels), max(float(m.max()) for _, m in panels)  # one colour scale
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.2 * len(panels) + 0.6), sharex=True, squeeze=False)
    for ax, (name, mel) in zip(axes[:, 0], panels):
        ax.imshow(mel.T, cmap="magma", aspect="auto", origin="lower", interpolation="none", vmin=low, vmax=high,
                  extent=(0, len(mel) * seconds, 0, mel.shape[1]))
        ax.set(ylabel="mel bin", title=name)
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    return to_png(fig)
