"""Part labels and logits of whole songs of any length, cut into independent windows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.part_separation.batches import collate
from models.part_separation.config import PartSepConfig
from models.part_separation.hints import Hints, hints_from_labels, resolve_hints, shift_hints
from models.part_separation.note_features import features
from models.part_separation.songs import PartSong
from models.training import model_device, to_device


@torch.no_grad()
def _song_logits(
    model: nn.Module,
    cfg: PartSepConfig,
    songs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, Hints | None]],
) -> list[np.ndarray]:
    """Float32 logits (n, n_parts) of each (onset, duration, pitch, hints) song, in eval mode.

    Songs are cut into consecutive ``max_len``-note windows, each an independent sequence with
    its own origin and shifted hints (no window sees a later one); windows of similar length
    are batched together.
    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    windows = []  # (song, start, features)
    for s, (onset, duration, pitch, hints) in enumerate(songs):
        hints = resolve_hints(hints, cfg)
        for start in range(0, len(pitch), cfg.max_len):
            w = slice(start, start + cfg.max_len)
            feats = features(onset[w], duration[w], pitch[w], shift_hints(hints, start, 0), cfg.n_parts)
            windows.append((s, start, feats))
    out = [np.zeros((len(song[2]), cfg.n_parts), dtype=np.float32) for song in songs]
    order = sorted(range(len(windows)), key=lambda i: len(windows[i][2]["pitch"]))
    for b in range(0, len(order), cfg.batch_size):
        chunk = [windows[i] for i in order[b : b + cfg.batch_size]]
        logits = model(to_device(collate([(f, None) for _, _, f in chunk]), device, keep=("length",))).float().cpu().numpy()
        for row, (s, start, feats) in enumerate(chunk):
            out[s][start : start + len(feats["pitch"])] = logits[row, : len(feats["pitch"])]
    model.train(was_training)
    return out


def predict(
    model: nn.Module,
    cfg: PartSepConfig,
    onset: np.ndarray,
    duration: np.ndarray,
    pitch: np.ndarray,
    hints: Hints | None = None,
) -> np.ndarray:
    """Part label of every note of one song sorted by (onset, pitch), of any length.

    Without ``hints`` (or without their pitch part) the training-set pitch means stand in.
    """
    if len(pitch) == 0:
        return np.zeros(0, dtype=np.int64)
    logits = _song_logits(model, cfg, [(np.asarray(onset), np.asarray(duration), np.asarray(pitch), hints)])[0]
    return logits.argmax(-1).astype(np.int64)


def evaluate(model: nn.Module, cfg: PartSepConfig, songs: Sequence[PartSong], use_hints: bool = True) -> dict:
    """Micro-averaged accuracy and mean cross-entropy over all notes of ``songs``.

    ``use_hints`` gives the model the hints of each song's labels; otherwise it sees no entry
    hints and the training-set pitch means, as on a user's unlabeled input. Also returns the
    concatenated ``labels`` and ``predictions``.
    """
    songs = [s for s in songs if len(s.pitch)]
    if not songs:
        raise ValueError("no evaluation song has notes")
    inputs = [
        (s.onset, s.duration, s.pitch, hints_from_labels(s.onset, s.pitch, s.label, cfg.n_parts) if use_hints else None)
        for s in songs
    ]
    logits = np.concatenate(_song_logits(model, cfg, inputs))
    labels = np.concatenate([s.label for s in songs])
    predictions = logits.argmax(-1)
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    return {
        "accuracy": float((predictions == labels).mean()),
        "loss": loss,
        "n_notes": len(labels),
        "labels": labels,
        "predictions": predictions,
    }
