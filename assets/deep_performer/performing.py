"""A score in, a performance out: the Deep Performer's inference path shared by `performance_eval`
and `baton perform`, and the files a trained model set travels with."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn

from assets.core.plots import plt, to_png
from assets.violin.scores import RESOLUTION
from models import deep_performer as dp
from models import vocoder as voc
from models.mel import HOP, SAMPLE_RATE

CONTEXT_FILE = "performers.json"


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
