"""Hyperparameters of one event-sequence language model: the MusPy experiment's and a tiny smoke profile."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LMConfig:
    """MusPy §2.5's models; the step budget and evaluation cadence are those of the `paper` profile."""

    arch: str = "lstm"  # "rnn" | "lstm" | "gru" | "transformer"
    vocab_size: int = 357
    embedding_dim: int = 128
    hidden_dim: int = 128
    num_layers: int = 2
    num_heads: int = 4  # transformer only
    dropout: float = 0.5
    seq_len: int = 64
    batch_size: int = 16
    lr: float = 1e-3
    max_steps: int = 10_000
    eval_every: int = 250
    checkpoint_every: int = 250
    patience: int = 10  # early stopping, in evaluations without improvement of val loss
    seed: int = 0


PROFILES = {
    "paper": LMConfig(),
    # tests and the demo: a small model, a few evaluations
    "smoke": LMConfig(embedding_dim=32, hidden_dim=32, seq_len=32, max_steps=60, eval_every=20, checkpoint_every=20),
}
