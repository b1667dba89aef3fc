"""The MMT decoder: six summed field embeddings in, six field heads out, with a key/value cache.

The cache makes each generated event cost one token's work instead of the whole prefix's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from models.mmt.config import MMTConfig
from models.mmt.encoding import FIELD_SIZES


@dataclass
class LayerCache:
    """Keys and values (batch, heads, max_seq_len, head_dim) of the rows one layer has seen."""

    keys: torch.Tensor | None = None
    values: torch.Tensor | None = None
    length: int = 0

    def extend(self, k: torch.Tensor, v: torch.Tensor, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new rows' keys and values and return those of every row so far."""
        if self.keys is None:  # allocated once, in the dtype attention runs in (bf16 under autocast)
            shape = (k.shape[0], k.shape[1], capacity, k.shape[3])
            self.keys = k.new_empty(shape)
            self.values = v.new_empty(shape)
        end = self.length + k.shape[2]
        self.keys[:, :, self.length : end] = k
        self.values[:, :, self.length : end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, capacity: int):
        super().__init__()
        self.heads, self.dropout, self.capacity = heads, dropout, capacity
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cache: LayerCache | None) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        start = 0
        if cache is not None:
            start = cache.length
            k, v = cache.extend(k, v, self.capacity)
        mask = None
        if length > 1 and start > 0:  # new rows see the cached ones and the earlier new ones
            mask = torch.ones(length, start + length, dtype=torch.bool, device=x.device).tril(start)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=length > 1 and start == 0,
        )
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))


class Block(nn.Module):
    """Pre-norm Transformer decoder block (attention, then a GELU feed-forward of width 4 × dim)."""

    def __init__(self, cfg: MMTConfig):
        super().__init__()
        self.attn_norm = nn.LayerNorm(cfg.dim)
        self.attn = SelfAttention(cfg.dim, cfg.heads, cfg.dropout, cfg.max_seq_len)
        self.ff_norm = nn.LayerNorm(cfg.dim)
        self.ff = nn.Sequential(
            nn.Linear(cfg.dim, 4 * cfg.dim), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(4 * cfg.dim, cfg.dim)
        )

    def forward(self, x: torch.Tensor, cache: LayerCache | None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cache)
        return x + self.ff(self.ff_norm(x))


class MMT(nn.Module):
    """Maps codes (batch, length, 6) to six logit tensors (batch, length, FIELD_SIZES[f])."""

    def __init__(self, cfg: MMTConfig):
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError(f"dim {cfg.dim} is not a multiple of heads {cfg.heads}")
        self.cfg = cfg
        self.embeddings = nn.ModuleList(nn.Embedding(size, cfg.dim) for size in FIELD_SIZES)
        self.positions = nn.Embedding(cfg.max_seq_len, cfg.dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.heads = nn.ModuleList(nn.Linear(cfg.dim, size) for size in FIELD_SIZES)
        self.apply(_init_weights)

    def new_cache(self) -> list[LayerCache]:
        return [LayerCache() for _ in self.blocks]

    def forward(self, codes: torch.Tensor, cache: list[LayerCache] | None = None) -> list[torch.Tensor]:
        """Logits for the rows of ``codes``; with ``cache`` they continue the rows it has seen."""
        start = cache[0].length if cache is not None else 0
        end = start + codes.shape[1]
        if end > self.cfg.max_seq_len:
            raise ValueError(f"{end} rows exceed max_seq_len {self.cfg.max_seq_len}")
        x = sum(emb(codes[..., i]) for i, emb in enumerate(self.embeddings))
        x = self.dropout(x + self.positions(torch.arange(start, end, device=codes.device)))
        for i, block in enumerate(self.blocks):
            x = block(x, cache[i] if cache is not None else None)
        x = self.norm(x)
        return [head(x) for head in self.heads]


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
