"""Training and validation batches: beat windows of songs' codes, pitch-shifted for training."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from models.mmt.config import MMTConfig
from models.mmt.encoding import BEAT, FIELDS, PITCH, TYPE_END, TYPE_NOTE


def _end_row() -> np.ndarray:
    row = np.zeros((1, len(FIELDS)), dtype=np.int64)
    row[0, 0] = TYPE_END
    return row


def window(
    codes: np.ndarray, max_beat: int, max_seq_len: int, rng: np.random.Generator | None = None, pitch_shift: int = 0
) -> np.ndarray:
    """The song's header and its notes in a ``max_beat``-beat window, re-based to beat 0.

    The window starts at a random beat drawn by ``rng`` (the first beat without one). Pitches are
    shifted by ``pitch_shift`` semitones, dropping notes that leave 0..127; instrument events stay.
    The result ends with end-of-song and is cut to ``max_seq_len`` rows, keeping that last row.
    """
    codes = np.asarray(codes, dtype=np.int64)
    header = codes[codes[:, 0] < TYPE_NOTE]
    notes = codes[codes[:, 0] == TYPE_NOTE]
    beats = notes[:, BEAT] - 1
    span = int(beats.max()) + 1 if len(notes) else 0
    start = int(rng.integers(span - max_beat + 1)) if rng is not None and span > max_beat else 0
    notes = notes[(beats >= start) & (beats < start + max_beat)]
    notes[:, BEAT] -= start
    notes[:, PITCH] += pitch_shift
    notes = notes[(notes[:, PITCH] >= 1) & (notes[:, PITCH] <= 128)]
    seq = np.concatenate([header, notes, _end_row()])
    if len(seq) > max_seq_len:
        seq = np.concatenate([seq[: max_seq_len - 1], seq[-1:]])
    return seq


def collate(seqs: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
    """Right-pad code arrays with zeros to one length; ``mask`` marks the real rows."""
    length = max(len(s) for s in seqs)
    codes = np.zeros((len(seqs), length, len(FIELDS)), dtype=np.int64)
    mask = np.zeros((len(seqs), length), dtype=bool)
    for i, seq in enumerate(seqs):
        codes[i, : len(seq)] = seq
        mask[i, : len(seq)] = True
    return {"codes": torch.from_numpy(codes), "mask": torch.from_numpy(mask)}


def make_batches(sequences: Sequence[np.ndarray], cfg: MMTConfig, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless training batches: songs in a fresh random order each pass, a random window of each
    and a random pitch shift in [pitch_shift_min, pitch_shift_max]; the same ``seed`` gives the
    same stream, which resuming relies on."""
    if not sequences:
        raise ValueError("no training sequences")
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while True:
        batch = []
        for _ in range(cfg.batch_size):
            if not order:
                order = rng.permutation(len(sequences)).tolist()
            shift = int(rng.integers(cfg.pitch_shift_min, cfg.pitch_shift_max + 1))
            batch.append(window(sequences[order.pop()], cfg.max_beat, cfg.max_seq_len, rng, shift))
        yield collate(batch)


def val_batches(sequences: Sequence[np.ndarray], cfg: MMTConfig) -> list[dict[str, torch.Tensor]]:
    """Validation batches: every song once, its first window, no augmentation."""
    windows = [window(seq, cfg.max_beat, cfg.max_seq_len) for seq in sequences]
    return [collate(windows[i : i + cfg.batch_size]) for i in range(0, len(windows), cfg.batch_size)]
