"""The registered layout of either model: its weights and a config that names its kind."""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from models.checkpoints import load_model_dir, read_model_config, save_model_dir
from models.deep_performer.config import DeepPerformerConfig
from models.deep_performer.network import SynthesisModel, build_model
from models.training import default_device


def _kind(model: nn.Module) -> str:
    return "synthesis" if isinstance(model, SynthesisModel) else "alignment"


def save_model(model: nn.Module, cfg: DeepPerformerConfig, out_dir: str) -> None:
    """The registered layout, with the model's ``kind`` in its config."""
    save_model_dir(out_dir, model, {"kind": _kind(model), **asdict(cfg)})


def load_model(out_dir: str, device: torch.device | str | None = None) -> tuple[nn.Module, DeepPerformerConfig]:
    """Rebuild a model saved by :func:`save_model` (either kind), in eval mode on ``device``."""
    fields = read_model_config(out_dir)
    kind = fields.pop("kind")
    cfg = DeepPerformerConfig(**fields)
    return load_model_dir(out_dir, build_model(cfg, kind), device or default_device()), cfg
