"""Separation of a mixture of any length by a text or image query, or into PIT's two outputs."""

from __future__ import annotations

import numpy as np
import torch

from models.clipsep.config import CLIP_SAMPLES
from models.clipsep.frontend import LOG_EPS, apply_mask, stft, warp
from models.clipsep.mixtures import query_vector
from models.clipsep.network import CLIPSep
from models.training import model_device


@torch.no_grad()
def _separate(model: CLIPSep, mixture: np.ndarray, query: np.ndarray | None) -> np.ndarray:
    """(H, n) audio of the query mask (H = 1) or of the free heads, for a mixture of any length n.

    Inputs longer than a clip are cut into clip-long windows at half-clip hops (the last one
    zero-padded); window outputs are Hann-weighted, summed and divided by the summed weights,
    so every sample is a convex mix of the windows covering it. Shorter inputs are zero-padded.
    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    mixture = np.asarray(mixture, dtype=np.float32)
    n = len(mixture)
    hop = CLIP_SAMPLES // 2
    starts = list(range(0, max(n - CLIP_SAMPLES, 0) + hop, hop)) if n > CLIP_SAMPLES else [0]
    padded = np.zeros(starts[-1] + CLIP_SAMPLES, dtype=np.float32)
    padded[:n] = mixture
    windows = torch.from_numpy(np.stack([padded[s : s + CLIP_SAMPLES] for s in starts])).to(device)
    spec = stft(windows)
    log_mag = torch.log(warp(spec.abs()) + LOG_EPS)
    if query is None:
        masks = model(log_mag)["free"]
    else:
        q = torch.from_numpy(query_vector(query)).to(device).expand(len(starts), 1, -1)
        masks = model(log_mag, q)["query"]
    audio = apply_mask(spec[:, None], masks, CLIP_SAMPLES).cpu().numpy().astype(np.float64)
    fade = np.hanning(CLIP_SAMPLES + 2)[1:-1] if len(starts) > 1 else np.ones(CLIP_SAMPLES)
    out = np.zeros((audio.shape[1], len(padded)))
    total = np.zeros(len(padded))
    for i, s in enumerate(starts):
        out[:, s : s + CLIP_SAMPLES] += audio[i] * fade
        total[s : s + CLIP_SAMPLES] += fade
    model.train(was_training)
    return (out / total)[:, :n].astype(np.float32)


def separate(model: CLIPSep, mixture: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Audio of the source a CLIP query (image or text, (512,) or (n, 512)) asks for."""
    if model.cfg.method == "pit":
        raise ValueError("a PIT model takes no query; use separate_pit")
    return _separate(model, mixture, query)[0]


def separate_pit(model: CLIPSep, mixture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two outputs of a PIT model, in no particular order."""
    if model.cfg.method != "pit":
        raise ValueError("separate_pit needs a model trained with method='pit'")
    a, b = _separate(model, mixture, None)
    return a, b
