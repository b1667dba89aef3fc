"""A trained part separator as a model folder: weights plus the config that rebuilds it."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from models.checkpoints import load_model_dir, save_model_dir
from models.part_separation.config import PartSepConfig
from models.part_separation.network import build_model
from models.training import default_device


def save_model(model: nn.Module, cfg: PartSepConfig, out_dir: str) -> None:
    save_model_dir(out_dir, model, asdict(cfg))


def load_config(path: str | Path) -> PartSepConfig:
    cfg = PartSepConfig(**json.loads(Path(path).read_text()))
    if cfg.pitch_means is not None:
        cfg.pitch_means = tuple(cfg.pitch_means)  # JSON has no tuples
    return cfg


def load_model(out_dir: str, device: torch.device | str | None = None) -> tuple[nn.Module, PartSepConfig]:
    """Rebuild a model saved by :func:`save_model`, in eval mode on ``device``."""
    cfg = load_config(Path(out_dir) / "config.json")
    return load_model_dir(out_dir, build_model(cfg), device or default_device()), cfg
