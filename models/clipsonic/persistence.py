"""The registered layout of a CLIPSonic diffusion model: its weights and config."""

from __future__ import annotations

from dataclasses import asdict

import torch

from models.checkpoints import load_model_dir, read_model_config, save_model_dir
from models.clipsonic.config import ClipSonicConfig
from models.clipsonic.network import ClipSonicUNet, build_model
from models.training import default_device


def save_model(model: ClipSonicUNet, cfg: ClipSonicConfig, out_dir: str) -> None:
    save_model_dir(out_dir, model, asdict(cfg))


def load_model(out_dir: str, device: torch.device | str | None = None) -> tuple[ClipSonicUNet, ClipSonicConfig]:
    """Rebuild a model saved by :func:`save_model`, in eval mode on ``device``."""
    cfg = ClipSonicConfig(**read_model_config(out_dir))
    return load_model_dir(out_dir, build_model(cfg), device or default_device()), cfg
