"""Deep Performer hyperparameters: the paper's, and a smoke profile that trains in seconds on a CPU."""

from __future__ import annotations

from dataclasses import dataclass

from models.mel import HOP, N_MELS, SAMPLE_RATE

FRAME_RATE = SAMPLE_RATE / HOP  # frames per second


@dataclass
class DeepPerformerConfig:
    d_model: int = 128
    n_heads: int = 2
    d_ff: int = 512
    encoder_layers: int = 3
    decoder_layers: int = 6
    align_layers: int = 3
    dropout: float = 0.1
    n_performers: int = 17  # the violinists of the Bach Violin Dataset
    n_mels: int = N_MELS
    crop_frames: int = 313  # 5 s; also the inference window
    batch_size: int = 16
    lr: float = 1e-3  # peak of the warm-up then inverse-square-root schedule
    warmup_steps: int = 4000
    max_steps: int = 100_000
    eval_every: int = 1000
    checkpoint_every: int = 1000
    patience: int = 10
    seed: int = 0
    use_notewise_pe: bool = True
    use_performer: bool = True


PROFILES = {
    "paper": DeepPerformerConfig(),
    "smoke": DeepPerformerConfig(
        d_model=16, n_heads=2, d_ff=32, encoder_layers=1, decoder_layers=1, align_layers=1, n_performers=4,
        crop_frames=64, batch_size=4, lr=3e-3, warmup_steps=5, max_steps=30, eval_every=10, checkpoint_every=10,
        patience=3,
    ),
}  # fmt: skip
