"""The four language models compared: RNN, LSTM, GRU and a causal Transformer."""

from __future__ import annotations

import torch
from torch import nn

from models.music_lm.config import LMConfig

RECURRENT = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
ARCHS = (*RECURRENT, "transformer")


class RecurrentLM(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embedding_dim)
        self.rnn = RECURRENT[cfg.arch](
            cfg.embedding_dim, cfg.hidden_dim, cfg.num_layers, batch_first=True, dropout=cfg.dropout
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_dim, cfg.vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.rnn(self.dropout(self.embedding(tokens)))
        return self.head(self.dropout(hidden))


class TransformerLM(nn.Module):
    """Causal Transformer; ``embedding_dim`` is the model width, ``hidden_dim`` the feed-forward width.

    Positions are learned for ``seq_len`` steps, the crop length it is trained on.
    """

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embedding_dim)
        self.positions = nn.Embedding(cfg.seq_len, cfg.embedding_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.embedding_dim, cfg.num_heads, cfg.hidden_dim, cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.embedding_dim)
        self.head = nn.Linear(cfg.embedding_dim, cfg.vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        positions = torch.arange(length, device=tokens.device)
        x = self.dropout(self.embedding(tokens) + self.positions(positions))
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device)
        return self.head(self.norm(self.encoder(x, mask=mask, is_causal=True)))


def build_model(cfg: LMConfig) -> nn.Module:
    """A language model mapping tokens (B, T) to next-token logits (B, T, vocab_size)."""
    if cfg.arch in RECURRENT:
        return RecurrentLM(cfg)
    if cfg.arch == "transformer":
        return TransformerLM(cfg)
    raise ValueError(f"unknown arch {cfg.arch!r}; expected one of {ARCHS}")
