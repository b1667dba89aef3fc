"""Training a part separator: the config's training-set statistics, the loss, validation and the run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.checkpoints import seed_everything
from models.part_separation.batches import IGNORE_INDEX, crop_batches
from models.part_separation.config import PartSepConfig
from models.part_separation.hints import part_pitch_means
from models.part_separation.inference import evaluate
from models.part_separation.network import build_model
from models.part_separation.songs import PartSong
from models.training import FitResult, LoopConfig, default_device, fit, model_device, to_device


def configure(cfg: PartSepConfig, train_songs: Sequence[PartSong]) -> PartSepConfig:
    """``cfg`` with ``n_parts`` and ``pitch_means`` taken from the training songs."""
    schemes = {s.part_names for s in train_songs}
    if len(schemes) != 1:
        raise ValueError(f"training songs must share one part scheme, got {len(schemes)}")
    n_parts = len(schemes.pop())
    return replace(cfg, n_parts=n_parts, pitch_means=part_pitch_means(train_songs, n_parts))


def _loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over the real notes of a batch, in float32."""
    batch = to_device(batch, model_device(model), keep=("length",))
    logits = model(batch).float()
    return F.cross_entropy(logits.flatten(0, 1), batch["label"].flatten(), ignore_index=IGNORE_INDEX)


def _hint_modes(cfg: PartSepConfig) -> list[bool]:
    """The hint settings training exposes the model to (True: the song's own hints)."""
    uses_hints = cfg.use_entry_hints or cfg.use_pitch_hints
    modes = [True] if uses_hints and cfg.hint_dropout < 1 else []
    return modes + ([False] if not uses_hints or cfg.hint_dropout > 0 else [])


def validate(model: nn.Module, cfg: PartSepConfig, songs: Sequence[PartSong]) -> dict[str, float]:
    """``val_loss`` (the monitored metric) is the mean loss over the hint settings seen in training.

    Accuracy and loss are reported both with the songs' hints and without them.
    """
    metrics: dict[str, float] = {}
    for use_hints in (True, False):
        result = evaluate(model, cfg, songs, use_hints)
        suffix = "" if use_hints else "_no_hints"
        metrics[f"val_loss{suffix}"] = result["loss"]
        metrics[f"val_accuracy{suffix}"] = result["accuracy"]
    modes = _hint_modes(cfg)
    metrics["val_loss"] = float(np.mean([metrics["val_loss" if m else "val_loss_no_hints"] for m in modes]))
    return metrics


def _check(cfg: PartSepConfig, songs: Sequence[PartSong]) -> None:
    if cfg.use_pitch_hints and cfg.pitch_means is None:
        raise ValueError("pitch hints need cfg.pitch_means; build the config with configure(cfg, train_songs)")
    if any(len(s.part_names) != cfg.n_parts for s in songs):
        raise ValueError(f"every song must have cfg.n_parts={cfg.n_parts} parts")


def train(
    cfg: PartSepConfig,
    train_songs: Sequence[PartSong],
    val_songs: Sequence[PartSong],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[nn.Module, FitResult]:
    """Train with Adam and early stopping on ``val_loss`` (see :func:`validate`).

    Resumes from ``ckpt_dir/last.pt`` when present; the returned model carries the best weights.
    """
    _check(cfg, [*train_songs, *val_songs])
    seed_everything(cfg.seed)
    model = build_model(cfg).to(device or default_device())
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loop = LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience)
    result = fit(
        model,
        optimizer,
        crop_batches(train_songs, cfg, seed=cfg.seed),
        _loss,
        lambda m: validate(m, cfg, val_songs),
        ckpt_dir,
        loop,
        log,
        progress=progress,
        desc=f"{cfg.arch} part separation",
    )
    return model, result
