"""The crops CLIPSonic learns from and the seeded batches drawn from them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from models.clipsonic.config import ClipSonicConfig
from models.clipsonic.normalise import to_unit

VALID_STREAM = 1  # the validation draw's rng stream, apart from every training step's


@dataclass
class MelSet:
    """Log-mel crops (n, 64, 64) float32 and, per crop, its candidate conditions (k_i, cond_dim):
    the CLIP embeddings of its video's frames (one drawn per step), or one text embedding."""

    mels: np.ndarray
    conditions: list[np.ndarray]

    def __post_init__(self) -> None:
        if len(self.mels) != len(self.conditions):
            raise ValueError(f"{len(self.mels)} crops but {len(self.conditions)} condition arrays")
        if not len(self.mels):
            raise ValueError("a MelSet needs at least one crop")


def _draw(data: MelSet, indices: np.ndarray, rng: np.random.Generator, cfg: ClipSonicConfig, dropout: float) -> dict:
    """The crops at ``indices`` in unit range, one random condition row each, the dropout mask,
    diffusion timesteps and noise, all from ``rng``."""
    mels = to_unit(data.mels[indices])[:, None]
    rows = [data.conditions[i][rng.integers(len(data.conditions[i]))] for i in indices]
    n = len(indices)
    return {
        "mels": torch.from_numpy(np.ascontiguousarray(mels, dtype=np.float32)),
        "conditions": torch.from_numpy(np.stack(rows).astype(np.float32)),
        "drop": torch.from_numpy(rng.random(n) < dropout),
        "timesteps": torch.from_numpy(rng.integers(cfg.train_timesteps, size=n)),
        "noise": torch.from_numpy(rng.standard_normal(mels.shape, dtype=np.float32)),
    }


def batches(train: MelSet, cfg: ClipSonicConfig) -> Iterator[dict[str, torch.Tensor]]:
    """Endless training batches; batch ``step`` comes from an rng seeded with (seed, step) alone, so
    a resumed run draws the same batches. Each crop drops its condition with ``cfg.cond_dropout``."""
    step = 0
    while True:
        rng = np.random.default_rng([cfg.seed, step])
        yield _draw(train, rng.integers(len(train.mels), size=cfg.batch_size), rng, cfg, cfg.cond_dropout)
        step += 1


def validation_batches(valid: MelSet, cfg: ClipSonicConfig) -> list[dict[str, torch.Tensor]]:
    """Every validation crop once, conditioned, with fixed seeded condition rows, timesteps and noise."""
    rng = np.random.default_rng([cfg.seed, VALID_STREAM])
    order = np.arange(len(valid.mels))
    return [_draw(valid, order[i : i + cfg.batch_size], rng, cfg, 0.0) for i in range(0, len(order), cfg.batch_size)]
