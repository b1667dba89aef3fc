"""CLIPSep's training objectives.

- Loss: weighted binary cross-entropy against binary masks (source magnitude >= every other
  source's, on the warped spectrogram) with weight clip(log(1 + |mixture|), 1e-3, 10).
- Noise invariant training (``method="nit"``): two extra learnable query vectors give
  query-independent noise masks N_1, N_2. With query masks Q_1, Q_2 of the two sources and
  targets M_1, M_2 the paper's loss is L_NIT = min(sum_i WBCE(M_i, Q_i + N_i),
  sum_i WBCE(M_i, Q_i + N_(3-i))) (sums clipped to [0, 1]), chosen per mixture, plus
  lambda * L_REG with L_REG = max(0, sum_i mean(N_i) - gamma), mean over all TF bins of a
  mixture: noise heads may together claim at most a gamma share of the spectrogram before
  they are penalised (gamma = 0.25, lambda = 0.1). At test time only the query mask is used.
- PIT baseline (``method="pit"``): the same U-Net with two learned, query-free output heads,
  trained with the permutation-invariant version of the same loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from models.clipsep.frontend import LOG_EPS, stft, warp
from models.clipsep.network import CLIPSep

WEIGHT_RANGE = (1e-3, 10.0)


def binary_masks(source_mags: torch.Tensor) -> torch.Tensor:
    """(B, S, F, T) targets: 1 where a source is at least as loud as every other source."""
    n = source_mags.shape[1]
    index = torch.arange(n, device=source_mags.device)
    others = torch.stack([source_mags[:, index != i].amax(1) for i in range(n)], dim=1)
    return (source_mags >= others).float()


def wbce(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted binary cross-entropy per mixture and mask, (B, S), each a mean over TF bins."""
    p = pred.float().clamp(1e-7, 1 - 1e-7)
    bce = -(target * p.log() + (1 - target) * (1 - p).log())
    return (weight * bce).mean((-2, -1))


def assignment_losses(candidates: Sequence[torch.Tensor], target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, P) summed WBCE of each candidate mask set (B, S, F, T); the loss takes the per-row min."""
    return torch.stack([wbce(c, target, weight).sum(1) for c in candidates], dim=1)


def nit_candidates(query: torch.Tensor, noise: torch.Tensor) -> list[torch.Tensor]:
    """The two ways to add two noise masks to two query masks, clipped to [0, 1]."""
    return [(query + noise).clamp(0, 1), (query + noise.flip(1)).clamp(0, 1)]


def noise_regularizer(noise: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B,) L_REG = max(0, sum_i mean(N_i) - gamma) of noise masks (B, n_noise, F, T)."""
    return (noise.mean((-2, -1)).sum(1) - threshold).clamp(min=0)


def objective(model: CLIPSep, mixture: torch.Tensor, sources: torch.Tensor, queries: torch.Tensor) -> dict[str, torch.Tensor]:
    """Training loss ``loss`` (per ``model.cfg.method``) and the plain query-mask loss ``query_loss``
    of mixtures (B, N), their sources (B, 2, N) and normalised queries (B, 2, 512)."""
    cfg = model.cfg
    with torch.autocast(mixture.device.type, enabled=False):  # masks and weights need float32 magnitudes
        mag = warp(stft(mixture).abs())
        target = binary_masks(warp(stft(sources).abs()))
    weight = torch.log1p(mag).clamp(*WEIGHT_RANGE)[:, None]
    out = model(torch.log(mag + LOG_EPS), queries)
    if cfg.method == "pit":
        loss = assignment_losses([out["free"], out["free"].flip(1)], target, weight).amin(1).mean()
        return {"loss": loss}
    query_loss = wbce(out["query"], target, weight).sum(1).mean()
    if cfg.method == "clipsep":
        return {"loss": query_loss, "query_loss": query_loss}
    nit = assignment_losses(nit_candidates(out["query"], out["free"]), target, weight).amin(1)
    reg = noise_regularizer(out["free"], cfg.noise_threshold)
    return {"loss": (nit + cfg.noise_weight * reg).mean(), "query_loss": query_loss, "noise_reg": reg.mean()}
