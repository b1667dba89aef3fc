"""Dataset statistics of MusPy §2.4: song length, initial tempo and key histograms as PNGs."""

from __future__ import annotations

from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from assets.core.plots import to_png

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def key_name(root: int | None, mode: str | None, fifths: int | None) -> str:
    """A readable key label; falls back to the circle of fifths when the root is unknown."""
    if root is None and fifths is not None:
        root = (7 * fifths) % 12
        if mode == "minor":
            root = (root + 9) % 12
    if root is None:
        return "unknown"
    return f"{PITCH_NAMES[int(root) % 12]} {mode or 'major'}"


def initial_keys(songs: pd.DataFrame) -> list[str]:
    labels = []
    for keys in songs["key_signatures"]:
        keys = list(keys) if keys is not None else []
        if not keys:
            labels.append("unknown")
            continue
        first = min(keys, key=lambda k: k["time"])
        labels.append(key_name(first["root"], first["mode"], first["fifths"]))
    return labels


def summary(songs: pd.DataFrame) -> dict[str, float]:
    return {
        "songs": int(len(songs)),
        "notes": int(songs["n_notes"].sum()),
        "hours": float(songs["length_seconds"].sum() / 3600),
        "mean_length_seconds": float(songs["length_seconds"].mean()) if len(songs) else 0.0,
        "median_initial_tempo": float(songs["initial_tempo"].median()) if len(songs) else 0.0,
    }


def histograms(songs: pd.DataFrame, title: str) -> dict[str, bytes]:
    """PNG bytes by file name; one figure per statistic so the UI can show each on its own."""
    figures: dict[str, bytes] = {}
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(songs["length_seconds"], bins=min(40, max(5, len(songs) // 5)), color="#4477aa")
    ax.set(xlabel="song length (s)", ylabel="songs", title=f"{title}: song length")
    figures["song_length.png"] = to_png(fig)

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(songs["initial_tempo"], bins=np.arange(0, 305, 10), color="#ee6677")
    ax.set(xlabel="initial tempo (qpm)", ylabel="songs", title=f"{title}: initial tempo")
    figures["initial_tempo.png"] = to_png(fig)

    counts = Counter(initial_keys(songs))
    labels = sorted(counts, key=lambda k: (-counts[k], k))
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(labels)), 3.2))
    ax.bar(range(len(labels)), [counts[k] for k in labels], color="#228833")
    ax.set_xticks(range(len(labels)), labels, rotation=70, fontsize=7)
    ax.set(ylabel="songs", title=f"{title}: key")
    figures["key.png"] = to_png(fig)
    return figures
