"""CLIPSep's network: a 7-level U-Net over the log magnitude yields K = 32 feature maps F_k; a
query gives K weights w_k and the mask is sigmoid(sum_k a_k w_k F_k + b) with learnable a (K,)
and b. The query is the mean of the CLIP embeddings of 3 frames, L2-normalised (CLIP compares
normalised embeddings; normalising makes image and text queries the same scale), through a
linear projection to K weights. Query-free heads weight the same maps for NIT's noise masks and
PIT's two outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from models.clipsep.config import EMBED_DIM, METHODS, CLIPSepConfig

LEVELS = 7


class UNet(nn.Module):
    """Sound of Pixels' 7-level U-Net: stride-2 conv-BN-LeakyReLU down, transposed conv-BN-ReLU up
    with skip connections, a linear last layer with ``n_out`` feature maps at input resolution.
    Both input sides must be multiples of 2 ** 7."""

    def __init__(self, ngf: int, n_out: int):
        super().__init__()
        chans = [ngf * min(2**i, 8) for i in range(LEVELS)]
        self.norm = nn.BatchNorm2d(1)
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_in, c, 4, 2, 1), nn.BatchNorm2d(c), nn.LeakyReLU(0.2))
            for c_in, c in zip([1, *chans[:-1]], chans)
        )
        self.up = nn.ModuleList()
        for i in reversed(range(LEVELS)):
            c_in = chans[i] * (1 if i == LEVELS - 1 else 2)
            if i:
                self.up.append(nn.Sequential(nn.ConvTranspose2d(c_in, chans[i - 1], 4, 2, 1), nn.BatchNorm2d(chans[i - 1]), nn.ReLU()))
            else:
                self.up.append(nn.ConvTranspose2d(c_in, n_out, 4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        x = self.norm(x)
        for down in self.down:
            x = down(x)
            skips.append(x)
        x = skips.pop()
        for i, up in enumerate(self.up):
            x = up(torch.cat([x, skips.pop()], 1) if i else x)
        return x


class CLIPSep(nn.Module):
    """U-Net features mixed into masks by query weights (``method`` "clipsep" or "nit") and by
    learned query-free heads (NIT's noise heads, or PIT's two outputs)."""

    def __init__(self, cfg: CLIPSepConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.n_masks
        self.unet = UNet(cfg.ngf, k)
        self.query = nn.Linear(EMBED_DIM, k) if cfg.method != "pit" else None
        n_free = {"clipsep": 0, "nit": cfg.n_noise, "pit": 2}[cfg.method]
        self.heads = nn.Parameter(torch.randn(n_free, k) / k**0.5)
        self.scale = nn.Parameter(torch.ones(k))
        self.bias = nn.Parameter(torch.zeros(1))

    def features(self, log_mag: torch.Tensor) -> torch.Tensor:
        """(B, K, 256, T) feature maps of a (B, 256, T) warped log magnitude."""
        return self.unet(log_mag[:, None])

    def masks(self, features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(B, H, 256, T) masks in [0, 1] from per-mask weights (B, H, K)."""
        logits = torch.einsum("bhk,bkft->bhft", weights * self.scale, features) + self.bias
        return torch.sigmoid(logits.float())

    def forward(self, log_mag: torch.Tensor, queries: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``query``: masks (B, Q, 256, T) for normalised queries (B, Q, 512); ``free``: (B, H, 256, T)."""
        feats = self.features(log_mag)
        out = {"free": self.masks(feats, self.heads.expand(len(feats), -1, -1))}
        if queries is not None and self.query is not None:
            out["query"] = self.masks(feats, self.query(queries))
        return out


def build_model(cfg: CLIPSepConfig) -> CLIPSep:
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; expected one of {METHODS}")
    return CLIPSep(cfg)
