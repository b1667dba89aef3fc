"""The registered layout of a HiFi-GAN: the generator's weights and config; discriminators are training-only."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from models.checkpoints import load_model_dir, read_model_config, save_model_dir
from models.training import default_device
from models.vocoder.config import VocoderConfig
from models.vocoder.network import Generator


def save_vocoder(generator: nn.Module, cfg: VocoderConfig, out_dir: str) -> None:
    """The registered layout of the generator; discriminators are training-only."""
    save_model_dir(out_dir, generator, asdict(cfg))


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def load_vocoder(out_dir: str, device: torch.device | str | None = None) -> tuple[Generator, VocoderConfig]:
    """Rebuild a generator saved by :func:`save_vocoder`, in eval mode on ``device``; a config saved
    before the mel spec was recorded is the Deep Performer's, the default."""
    cfg = VocoderConfig(**{k: _tuples(v) for k, v in read_model_config(out_dir).items()})  # JSON has no tuples
    return load_model_dir(out_dir, Generator(cfg), device or default_device()), cfg
