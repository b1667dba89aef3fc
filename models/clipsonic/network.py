"""CLIPSonic's denoiser: a diffusers ``UNet2DModel`` over 64x64 log-mel crops whose timestep embedding
is shifted by a linear projection of the condition, and whose input carries a second channel: a
per-band profile projected from the same condition, repeated over time.

The thesis does not say how the condition enters its U-Net. Through the timestep embedding alone a
CPU-sized model barely follows it (22 % of samples heard as the queried instrument after 600 steps on
the synthetic set, chance 12.5 %); the band profile puts the condition where an instrument differs
most, its spectral envelope, and the same noise-predicting model follows it more (53–66 % after 1,200
steps). Predicting the velocity instead (:mod:`models.clipsonic.diffusion`) takes it to 100 % in 600
steps, shuffled queries 3 % (BENCHMARKS.md).

The condition (a CLIP image or text embedding, or a CLAP text embedding) is L2-normalised before
the projection, so that image and text queries reach the network at the same scale, as CLIP compares
them, and scaled to unit mean square per entry, so that the projection starts as strong a signal as
the timestep's rather than one sqrt(cond_dim) times weaker, which slows learning to follow it.
Classifier-free guidance needs an unconditional prediction too: a learned ``null`` embedding
stands in for the projected condition wherever the condition is dropped.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DModel
from torch import nn

from models.clipsonic.config import CROP_FRAMES, SPEC, ClipSonicConfig


class ClipSonicUNet(nn.Module):
    def __init__(self, cfg: ClipSonicConfig):
        super().__init__()
        self.cfg = cfg
        self.unet = UNet2DModel(
            sample_size=(CROP_FRAMES, SPEC.n_mels),
            in_channels=2,  # the noisy crop and the condition's band profile
            out_channels=1,
            block_out_channels=cfg.block_out_channels,
            down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention),
            up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention)),
            layers_per_block=cfg.layers_per_block,
            attention_head_dim=cfg.attention_head_dim,
            norm_num_groups=cfg.norm_groups,
            class_embed_type="identity",
        )
        embed_dim = self.unet.time_embedding.linear_2.out_features
        self.cond_proj = nn.Linear(cfg.cond_dim, embed_dim)
        self.null = nn.Parameter(torch.zeros(embed_dim))
        self.band_proj = nn.Linear(cfg.cond_dim, SPEC.n_mels)
        self.null_bands = nn.Parameter(torch.zeros(SPEC.n_mels))

    def condition_embedding(self, conditions: torch.Tensor | None, drop: torch.Tensor | None, n: int) -> torch.Tensor:
        """(n, embed_dim): the projected normalised conditions, the null embedding where ``drop`` is
        true or everywhere when ``conditions`` is None."""
        return self._project(self.cond_proj, self.null, conditions, drop, n)

    def band_profile(self, conditions: torch.Tensor | None, drop: torch.Tensor | None, n: int) -> torch.Tensor:
        """(n, n_mels): the conditions' band profiles, the null profile where dropped or absent."""
        return self._project(self.band_proj, self.null_bands, conditions, drop, n)

    def _project(self, proj: nn.Linear, null: torch.Tensor, conditions: torch.Tensor | None, drop: torch.Tensor | None,
                 n: int) -> torch.Tensor:  # fmt: skip
        if conditions is None:
            return null.expand(n, -1)
        unit_rms = nn.functional.normalize(conditions.float(), dim=-1) * self.cfg.cond_dim**0.5
        projected = proj(unit_rms)
        if drop is None:
            return projected
        return torch.where(drop[:, None], null.to(projected.dtype), projected)

    def forward(
        self,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        conditions: torch.Tensor | None = None,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The predicted noise (B, 1, 64, 64) of noisy unit-range crops (B, 1, 64, 64) at ``timesteps`` (B,)."""
        embedding = self.condition_embedding(conditions, drop, len(noisy))
        bands = self.band_profile(conditions, drop, len(noisy)).to(noisy.dtype)
        profile = bands[:, None, None, :].expand(-1, 1, noisy.shape[2], -1)  # (B, 1, frames, bands)
        return self.unet(torch.cat([noisy, profile], dim=1), timesteps, class_labels=embedding).sample


def build_model(cfg: ClipSonicConfig) -> ClipSonicUNet:
    return ClipSonicUNet(cfg)
