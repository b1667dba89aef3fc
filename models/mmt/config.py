"""MMT hyperparameters: the published setup and a tiny smoke profile."""

from __future__ import annotations

from dataclasses import dataclass

from models.mmt.encoding import MAX_BEAT, MAX_SEQ_LEN


@dataclass
class MMTConfig:
    """The published MMT setup; ``max_beat`` is the training window in beats (at most MAX_BEAT).

    Learning rate: linear warm-up from ``lr / warmup_steps`` to ``lr`` over ``warmup_steps``, then
    linear decay to ``final_lr_fraction * lr`` at ``decay_end_step``, constant after that (MMT:
    5,000 warm-up steps, 0.1 × 5e-4 from step 100,000 on).
    """

    dim: int = 512
    layers: int = 6
    heads: int = 8
    dropout: float = 0.2
    max_seq_len: int = MAX_SEQ_LEN
    max_beat: int = MAX_BEAT
    batch_size: int = 8
    lr: float = 5e-4
    warmup_steps: int = 5_000
    decay_end_step: int = 100_000
    final_lr_fraction: float = 0.1
    pitch_shift_min: int = -5  # semitones, inclusive
    pitch_shift_max: int = 6
    max_steps: int = 200_000
    eval_every: int = 1_000
    checkpoint_every: int = 1_000
    patience: int = 20
    grad_clip: float = 1.0
    seed: int = 0


PROFILES = {
    "paper": MMTConfig(),
    "smoke": MMTConfig(
        dim=64,
        layers=2,
        heads=4,
        dropout=0.1,
        max_seq_len=256,
        max_beat=64,
        batch_size=4,
        lr=1e-3,
        warmup_steps=5,
        decay_end_step=40,
        max_steps=40,
        eval_every=10,
        checkpoint_every=10,
        patience=5,
    ),
}
