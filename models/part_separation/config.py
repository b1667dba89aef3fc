"""Part-separation hyperparameters, the architectures and the paper, smoke and demo profiles.

Online models (``lstm``, a causal ``transformer_decoder``) see only the notes up to the current
one, so they can arrange live input; offline models (``bilstm``, ``transformer_encoder``) see the
whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

ONLINE = ("lstm", "transformer_decoder")
OFFLINE = ("bilstm", "transformer_encoder")
ARCHS = (*ONLINE, *OFFLINE)


@dataclass
class PartSepConfig:
    arch: str = "lstm"  # one of ARCHS
    n_parts: int = 4
    use_entry_hints: bool = True
    use_pitch_hints: bool = True
    hint_dropout: float = 0.25  # probability that a training crop sees no entry hints and the training pitch means
    pitch_means: tuple[float | None, ...] | None = None  # per-part training-set mean pitch (None: part unseen)
    d_model: int = 128  # LSTM width (split over both directions for bilstm) or transformer width
    n_layers: int = 3
    n_heads: int = 8
    d_ff: int = 256
    dropout: float = 0.2
    crop_len: int = 500
    max_len: int = 2000  # evaluation and inference window, in notes
    batch_size: int = 16
    lr: float = 1e-3
    transpose_low: int = -5
    transpose_high: int = 6
    max_steps: int = 50_000
    eval_every: int = 500
    checkpoint_every: int = 500
    patience: int = 5
    seed: int = 0


PROFILES = {
    "paper": PartSepConfig(),
    "smoke": PartSepConfig(
        d_model=16, n_layers=1, n_heads=2, d_ff=32, crop_len=32, max_len=64, batch_size=4,
        max_steps=30, eval_every=10, checkpoint_every=10, patience=3,
    ),
    # the CPU demo: an online LSTM trained a few minutes, enough to beat the zone baseline on the test chorales
    "demo": PartSepConfig(
        d_model=64, n_layers=2, crop_len=128, batch_size=8, lr=2e-3,
        max_steps=200, eval_every=50, checkpoint_every=50, patience=3,
    ),
}  # fmt: skip
