"""PNG figures shown in the Dagster UI, logged to MLflow and embedded in the README.

Every plot is returned as PNG bytes so that the same figure serves materialization metadata,
MLflow artifacts and files on disk without a display.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import muspy  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def to_png(fig: plt.Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def png_image(png: bytes) -> Image.Image:
    """PNG bytes as the PIL image `mlflow.log_image` takes."""
    return Image.open(io.BytesIO(png))


def save_pngs(figures: Mapping[str, bytes], folder: str | Path) -> Path:
    """Write PNG bytes by file name into ``folder`` (made if missing), the one folder MLflow logs as artifacts."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in figures.items():
        (folder / name).write_bytes(png)
    return folder


def matrix_png(
    values: np.ndarray,
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    colour_label: str,
    fmt: str = "{:.1f}",
    log: bool = False,
) -> bytes:
    """A labelled matrix with the value written in every cell (perplexities, confusion matrices)."""
    values = np.asarray(values, dtype=float)
    shown = np.log(values) if log else values
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 0.7 * len(rows) + 1.8))
    image = ax.imshow(shown, cmap="viridis_r")
    middle = (np.nanmin(shown) + np.nanmax(shown)) / 2
    ax.set_xticks(range(len(columns)), columns, rotation=35, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            colour = "white" if shown[i, j] > middle else "black"
            ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=8, color=colour)
    fig.colorbar(image, ax=ax, label=colour_label)
    return to_png(fig, dpi=120)


def pianoroll_png(music: muspy.Music, title: str, max_beats: int | None = None) -> bytes:
    """One colour per track over time in beats; the quickest way to eyeball a generated or separated song."""
    fig, ax = plt.subplots(figsize=(10, 3.2))
    colours = plt.get_cmap("tab10")
    resolution = music.resolution
    for index, track in enumerate(t for t in music.tracks if t.notes):
        notes = np.array([(n.time, n.duration, n.pitch) for n in track.notes], dtype=float)
        if max_beats is not None:
            notes = notes[notes[:, 0] < max_beats * resolution]
        ax.hlines(notes[:, 2], notes[:, 0] / resolution, (notes[:, 0] + notes[:, 1]) / resolution,
                  colors=[colours(index % 10)], linewidth=2.2, label=track.name or f"program {track.program}")
    ax.set(xlabel="beat", ylabel="pitch", title=title)
    if music.tracks:
        ax.legend(loc="upper right", fontsize=7, ncols=min(4, len(music.tracks)))
    return to_png(fig)
