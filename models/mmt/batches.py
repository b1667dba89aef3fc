"""Training and validation batches: beat windows of whole songs' codes, drawn and pitch-shifted
for training as the published loader does."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from models.mmt.config import MMTConfig
from models.mmt.encoding import (
    BEAT,
    FIELDS,
    INSTRUMENT,
    PITCH,
    TYPE_END,
    TYPE_INSTRUMENT,
    TYPE_NOTE,
    TYPE_START,
    TYPE_START_NOTES,
)


WINDOW_TRIALS = 10  # draws of a start beat before a sparse window is taken anyway
MIN_WINDOW_NOTES = 10  # a window with no more notes than this is drawn again


def window(
    codes: np.ndarray, max_beat: int, max_seq_len: int, rng: np.random.Generator | None = None, pitch_shift: int = 0
) -> np.ndarray:
    """The codes the model sees of a whole song: ``window_at`` a start beat ``draw_start`` picks with
    ``rng``, or the first ``max_beat`` beats without one (validation and prompts)."""
    codes = np.asarray(codes, dtype=np.int64)
    start = 0 if rng is None else draw_start(codes[codes[:, 0] == TYPE_NOTE, BEAT] - 1, max_beat, rng)
    return window_at(codes, start, max_beat, max_seq_len, pitch_shift)


def draw_start(beats: np.ndarray, max_beat: int, rng: np.random.Generator) -> int:
    """The published loader's start beat for a song whose notes fall on ``beats`` (ascending).

    A song longer than the window starts at a uniform beat in [0, n_beats - max_beat), drawn
    again (up to WINDOW_TRIALS times) while the window would hold MIN_WINDOW_NOTES notes or fewer.
    """
    n_beats = int(beats[-1]) + 1 if len(beats) else 0
    start = 0
    if n_beats > max_beat:
        for _ in range(WINDOW_TRIALS):
            start = int(rng.integers(n_beats - max_beat))
            if np.count_nonzero((beats >= start) & (beats < start + max_beat)) > MIN_WINDOW_NOTES:
                break
    return start


def window_at(codes: np.ndarray, start: int, max_beat: int, max_seq_len: int, pitch_shift: int = 0) -> np.ndarray:
    """The song's notes in beats [start, start + max_beat), re-based to beat 0, with instrument events
    for the instruments in that window.

    As the published loader does, pitches are shifted by ``pitch_shift`` semitones and clamped to
    0..127 (no note is dropped). The result ends with end-of-song and is cut to ``max_seq_len``
    rows, keeping that last row.
    """
    codes = np.asarray(codes, dtype=np.int64)
    notes = codes[codes[:, 0] == TYPE_NOTE]
    notes = notes[(notes[:, BEAT] - 1 >= start) & (notes[:, BEAT] - 1 < start + max_beat)].copy()
    notes[:, BEAT] -= start
    notes[:, PITCH] = np.clip(notes[:, PITCH] + pitch_shift, 1, 128)
    seq = np.concatenate([header(np.unique(notes[:, INSTRUMENT])), notes, _row(TYPE_END)])
    if len(seq) > max_seq_len:
        seq = np.concatenate([seq[: max_seq_len - 1], seq[-1:]])
    return seq


def header(instruments: np.ndarray) -> np.ndarray:
    """Start-of-song, an instrument event per instrument code, start-of-notes."""
    rows = np.zeros((len(instruments), len(FIELDS)), dtype=np.int64)
    rows[:, 0], rows[:, INSTRUMENT] = TYPE_INSTRUMENT, instruments
    return np.concatenate([_row(TYPE_START), rows, _row(TYPE_START_NOTES)])


def _row(kind: int) -> np.ndarray:
    row = np.zeros((1, len(FIELDS)), dtype=np.int64)
    row[0, 0] = kind
    return row


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
