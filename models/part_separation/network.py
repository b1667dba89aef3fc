"""The part separator: a note embedding, an LSTM or Transformer body and a per-note part head."""

from __future__ import annotations

import math

import torch
from torch import nn

from models.part_separation.config import ARCHS, PartSepConfig
from models.part_separation.note_features import MAX_DURATION
from models.part_separation.songs import RESOLUTION

EMBED_DIM = 16


def sinusoid(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed sinusoidal encoding (..., dim) of real values x (...,), as in Vaswani et al. (2017)."""
    rates = torch.exp(-math.log(10_000.0) * torch.arange(0, dim, 2, device=x.device) / dim)
    angles = x.float()[..., None] * rates
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class NoteEmbedding(nn.Module):
    """Concatenated per-note features (B, T, out_dim)."""

    def __init__(self, cfg: PartSepConfig):
        super().__init__()
        self.cfg = cfg
        self.pitch = nn.Embedding(129, EMBED_DIM)
        self.duration = nn.Embedding(MAX_DURATION + 1, EMBED_DIM)
        self.position = nn.Embedding(RESOLUTION, EMBED_DIM)
        self.out_dim = 4 * EMBED_DIM + 2
        self.out_dim += 3 * cfg.n_parts if cfg.use_entry_hints else 0
        self.out_dim += EMBED_DIM * cfg.n_parts if cfg.use_pitch_hints else 0

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [
            self.pitch(batch["pitch"]),
            self.duration(batch["duration"]),
            sinusoid(batch["beat"], EMBED_DIM),
            self.position(batch["position"]),
            batch["time"][..., None],
            batch["frequency"][..., None],
        ]
        if self.cfg.use_entry_hints:
            parts.append(batch["entry"])
        if self.cfg.use_pitch_hints:
            hint = self.pitch(batch["pitch_hint"]).flatten(1)  # (B, n_parts * EMBED_DIM)
            parts.append(hint[:, None, :].expand(-1, batch["pitch"].shape[1], -1))
        return torch.cat(parts, dim=-1)


def _reverse_index(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) gather index reversing each row's first ``length`` steps and keeping its padding in place."""
    steps = torch.arange(width, device=lengths.device)[None, :]
    lengths = lengths[:, None]
    return torch.where(steps < lengths, lengths - 1 - steps, steps)


def _gather_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


class LSTMBody(nn.Module):
    """Stacked LSTMs, each followed by layer norm and dropout (Arranger's layout).

    The backward direction of a bidirectional layer reads each sequence reversed within its
    length, so it never reads padding; right padding cannot reach the forward direction. Padded
    tensors are used instead of packed sequences, whose backward pass on the CPU is quadratic in
    the sequence length.
    """

    def __init__(self, cfg: PartSepConfig, in_dim: int):
        super().__init__()
        self.bidirectional = cfg.arch == "bilstm"
        hidden = cfg.d_model // 2 if self.bidirectional else cfg.d_model
        dims = [in_dim] + [cfg.d_model] * (cfg.n_layers - 1)
        self.forward_lstms = nn.ModuleList(nn.LSTM(d, hidden, batch_first=True) for d in dims)
        if self.bidirectional:
            self.backward_lstms = nn.ModuleList(nn.LSTM(d, hidden, batch_first=True) for d in dims)
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.d_model) for _ in dims)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        reverse = _reverse_index(lengths.to(x.device), x.shape[1]) if self.bidirectional else None
        for i, norm in enumerate(self.norms):
            out, _ = self.forward_lstms[i](x)
            if reverse is not None:
                backward, _ = self.backward_lstms[i](_gather_steps(x, reverse))
                out = torch.cat([out, _gather_steps(backward, reverse)], dim=-1)
            x = self.dropout(norm(out))
        return x


class TransformerBody(nn.Module):
    """Pre-norm Transformer blocks over projected features plus a sinusoidal note-index encoding."""

    def __init__(self, cfg: PartSepConfig, in_dim: int):
        super().__init__()
        self.causal = cfg.arch == "transformer_decoder"
        self.d_model = cfg.d_model
        self.project = nn.Linear(in_dim, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, batch_first=True, norm_first=True
        )
        layer.self_attn.dropout = 0.0  # Arranger drops attention outputs, not attention weights
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        width = x.shape[1]
        index = torch.arange(width, device=x.device)
        x = self.dropout(self.project(x) + sinusoid(index, self.d_model))
        padding = index[None, :] >= lengths.to(x.device)[:, None]
        mask = torch.triu(torch.ones(width, width, dtype=torch.bool, device=x.device), 1) if self.causal else None
        return self.norm(self.blocks(x, mask=mask, src_key_padding_mask=padding, is_causal=self.causal))


class PartSeparator(nn.Module):
    """Per-note part logits (B, T, n_parts) from a feature batch (see :func:`collate`)."""

    def __init__(self, cfg: PartSepConfig):
        super().__init__()
        self.embed = NoteEmbedding(cfg)
        body = LSTMBody if cfg.arch in ("lstm", "bilstm") else TransformerBody
        self.body = body(cfg, self.embed.out_dim)
        self.head = nn.Linear(cfg.d_model, cfg.n_parts)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.body(self.embed(batch), batch["length"]))


def build_model(cfg: PartSepConfig) -> PartSeparator:
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown arch {cfg.arch!r}; expected one of {ARCHS}")
    return PartSeparator(cfg)
