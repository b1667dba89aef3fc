"""Padded feature batches: random transposed training crops, with hints dropped at random."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from models.part_separation.config import PartSepConfig
from models.part_separation.hints import hints_from_labels, resolve_hints, shift_hints
from models.part_separation.note_features import features
from models.part_separation.songs import PartSong

IGNORE_INDEX = -100


def collate(items: Sequence[tuple[dict[str, np.ndarray], np.ndarray | None]]) -> dict[str, torch.Tensor]:
    """Right-pad sequences into a batch; ``length`` holds the true lengths, padded labels are IGNORE_INDEX."""
    lengths = [len(f["pitch"]) for f, _ in items]
    width = max(lengths)
    batch: dict[str, torch.Tensor] = {"length": torch.tensor(lengths, dtype=torch.long)}
    for key, value in items[0][0].items():
        if key == "pitch_hint":
            batch[key] = torch.from_numpy(np.stack([f[key] for f, _ in items]))
            continue
        out = np.zeros((len(items), width, *value.shape[1:]), dtype=value.dtype)
        for row, (f, _) in enumerate(items):
            out[row, : len(f[key])] = f[key]
        batch[key] = torch.from_numpy(out)
    if items[0][1] is not None:
        labels = np.full((len(items), width), IGNORE_INDEX, dtype=np.int64)
        for row, (_, label) in enumerate(items):
            labels[row, : len(label)] = label
        batch["label"] = torch.from_numpy(labels)
    return batch


def transpositions(pitch: np.ndarray, low: int, high: int) -> np.ndarray:
    """The shifts in low..high that keep every pitch inside 0..127."""
    shifts = np.arange(low, high + 1)
    if len(pitch) == 0:
        return shifts
    return shifts[(pitch.min() + shifts >= 0) & (pitch.max() + shifts <= 127)]


def crop_batches(songs: Sequence[PartSong], cfg: PartSepConfig, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless deterministic batches of random ``crop_len``-note crops of random songs.

    Each crop is transposed by a random shift in transpose_low..transpose_high among those that
    keep its pitches in 0..127 (pitch hints move with it) and, with probability ``hint_dropout``,
    loses its entry hints and gets the training-set pitch means instead of its own.
    """
    songs = [s for s in songs if len(s.pitch)]
    if not songs:
        raise ValueError("no training song has notes")
    song_hints = [hints_from_labels(s.onset, s.pitch, s.label, cfg.n_parts) for s in songs]
    no_hints = resolve_hints(None, cfg)
    rng = np.random.default_rng(seed)
    while True:
        items = []
        for _ in range(cfg.batch_size):
            i = int(rng.integers(len(songs)))
            song = songs[i]
            start = int(rng.integers(len(song.pitch) - cfg.crop_len + 1)) if len(song.pitch) > cfg.crop_len else 0
            window = slice(start, start + cfg.crop_len)
            pitch = song.pitch[window]
            semitones = int(rng.choice(transpositions(pitch, cfg.transpose_low, cfg.transpose_high)))
            drop = rng.random() < cfg.hint_dropout
            hints = no_hints if drop else shift_hints(song_hints[i], start, semitones)
            feats = features(song.onset[window], song.duration[window], pitch + semitones, hints, cfg.n_parts)
            items.append((feats, song.label[window]))
        yield collate(items)


