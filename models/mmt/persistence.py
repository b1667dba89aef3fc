"""A trained MMT as a model folder: weights plus the config that rebuilds it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from models.checkpoints import load_model_dir, read_model_config, save_model_dir
from models.mmt.config import MMTConfig
from models.mmt.network import MMT
from models.training import default_device


def save_model(model: MMT, cfg: MMTConfig, out_dir: str | Path) -> None:
    save_model_dir(out_dir, model, asdict(cfg))


def load_model(out_dir: str | Path, device: torch.device | str | None = None) -> tuple[MMT, MMTConfig]:
    """Rebuild a model written by :func:`save_model`, in eval mode on ``device``."""
    cfg = MMTConfig(**read_model_config(out_dir))
    return load_model_dir(out_dir, MMT(cfg), device if device is not None else default_device()), cfg
