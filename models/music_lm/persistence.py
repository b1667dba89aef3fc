"""A trained language model as a model folder: weights plus the config that rebuilds it."""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from models.checkpoints import load_model_dir, read_model_config, save_model_dir
from models.music_lm.config import LMConfig
from models.music_lm.network import build_model
from models.training import default_device


def save_model(model: nn.Module, cfg: LMConfig, out_dir: str) -> None:
    save_model_dir(out_dir, model, asdict(cfg))


def load_model(out_dir: str, device: torch.device | str | None = None) -> tuple[nn.Module, LMConfig]:
    """Rebuild a model saved by :func:`save_model`, in eval mode on ``device``."""
    cfg = LMConfig(**read_model_config(out_dir))
    return load_model_dir(out_dir, build_model(cfg), device or default_device()), cfg
