"""Scores of any length to log-mels: note timing from the alignment model, then the synthesis model
over overlapping windows of its training length."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from models.deep_performer.clips import Clip, collate, crop, select_notes
from models.deep_performer.config import DeepPerformerConfig
from models.deep_performer.network import frames_per_beat
from models.training import model_device, to_device


@torch.no_grad()
def predict(model: nn.Module, cfg: DeepPerformerConfig, clips: Sequence[Clip]) -> list[np.ndarray]:
    """Float32 output of each clip (a log-mel with the clip's own note frames, or note timings), padded to
    its batch's widths: trim to ``len(clip.mel)`` or ``len(clip.pitch)``. Leaves ``model`` in eval mode."""
    model.eval()
    device = model_device(model)
    return [
        out
        for start in range(0, len(clips), cfg.batch_size)
        for out in model(to_device(collate(clips[start : start + cfg.batch_size]), device)).float().cpu().numpy()
    ]


@torch.no_grad()
def align(alignment: nn.Module, cfg: DeepPerformerConfig, score: Clip) -> tuple[np.ndarray, np.ndarray]:
    """Predicted (onset_frame, offset_frame) of the notes of a non-empty ``score`` (sorted by onset;
    its mel and frames are ignored), the first onset at frame 0, every note at least one frame long.

    Notes are grouped into windows spanning ``crop_frames`` at the tempo prior, each predicted on
    its own and anchored at its first note's prior onset, so timing deviations never accumulate
    over a movement.
    """
    n = len(score.pitch)
    prior = (score.onset_beat - score.onset_beat[0]) * frames_per_beat(score.qpm)
    window = (prior // cfg.crop_frames).astype(np.int64)
    firsts = np.flatnonzero(np.r_[True, window[1:] != window[:-1]])
    windows = [select_notes(score, slice(a, b)) for a, b in zip(firsts, np.r_[firsts[1:], n])]
    timing = np.concatenate([t[: len(w.pitch)] for t, w in zip(predict(alignment, cfg, windows), windows)])
    onset = np.rint(np.repeat(prior[firsts], np.diff(np.r_[firsts, n])) + timing[:, 0]).astype(np.int64)
    onset -= onset.min()
    return onset, onset + np.maximum(np.rint(timing[:, 1]), 1).astype(np.int64)


@torch.no_grad()
def synthesize(
    synthesis: nn.Module,
    alignment: nn.Module,
    cfg: DeepPerformerConfig,
    pitch: np.ndarray,
    onset_beat: np.ndarray,
    duration_beat: np.ndarray,
    performer: int,
    qpm: float,
) -> np.ndarray:
    """Log-mel (frames, n_mels) of a score of any length played by ``performer`` at ``qpm``.

    Timing comes from :func:`align`. The frames are synthesized in ``crop_frames`` windows
    overlapping by a quarter and cross-faded with linear ramps over the overlap; a note cut by
    a window edge keeps its true extent, so its note-wise position runs on across windows.
    """
    order = np.lexsort((pitch, onset_beat))
    if not len(order):
        return np.zeros((0, cfg.n_mels), np.float32)
    unaligned = np.zeros(len(order), np.int64)
    score = Clip(
        mel=np.zeros((1, cfg.n_mels), np.float32),
        pitch=np.asarray(pitch, np.int64)[order],
        onset_beat=np.asarray(onset_beat, np.float32)[order],
        duration_beat=np.asarray(duration_beat, np.float32)[order],
        onset_frame=unaligned,
        offset_frame=unaligned,
        performer=int(performer),
        qpm=float(qpm),
    )
    onset, offset = align(alignment, cfg, score)
    total = int(offset.max())
    score = replace(score, mel=np.zeros((total, cfg.n_mels), np.float32), onset_frame=onset, offset_frame=offset)
    overlap = cfg.crop_frames // 4
    starts = range(0, max(total - overlap, 1), cfg.crop_frames - overlap)
    windows = [crop(score, start, cfg.crop_frames) for start in starts]
    mel = np.zeros((total, cfg.n_mels), np.float32)
    weight = np.zeros((total, 1), np.float32)
    for start, out in zip(starts, predict(synthesis, cfg, windows)):
        length = min(cfg.crop_frames, total - start)
        ramp = np.minimum(np.minimum(np.arange(1, length + 1), np.arange(length, 0, -1)) / (overlap + 1), 1.0)
        mel[start : start + length] += ramp[:, None] * out[:length]
        weight[start : start + length] += ramp[:, None]
    return mel / weight
