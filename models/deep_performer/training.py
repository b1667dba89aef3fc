"""Training of either Deep Performer model through the shared loop, :func:`models.training.fit`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from models import distributed
from models.checkpoints import seed_everything
from models.deep_performer.clips import Clip, clip_batches
from models.deep_performer.config import DeepPerformerConfig
from models.deep_performer.evaluation import alignment_errors, alignment_metrics, mel_errors, mel_mse
from models.deep_performer.network import ALIGN_SCALE, build_model
from models.training import FitResult, LoopConfig, default_device, fit


def _synthesis_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    total, count = mel_errors(model, batch)
    return distributed.target_mean(total, count)  # clips differ in frames


def _alignment_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    errors, _ = alignment_errors(model, batch)
    squared = (errors / ALIGN_SCALE) ** 2
    return distributed.target_mean(squared.sum(), squared.numel())  # clips differ in notes


def _check(cfg: DeepPerformerConfig, clips: Sequence[Clip]) -> None:
    if any(c.mel.shape[1] != cfg.n_mels for c in clips):
        raise ValueError(f"every clip's mel must have cfg.n_mels={cfg.n_mels} bins")
    if any(not 0 <= c.performer < cfg.n_performers for c in clips):
        raise ValueError(f"performer IDs must lie in 0..{cfg.n_performers - 1} (cfg.n_performers)")


def train(
    kind: str,
    cfg: DeepPerformerConfig,
    train_clips: Sequence[Clip],
    valid_clips: Sequence[Clip],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | str | None = None,
    progress: bool = False,
) -> tuple[nn.Module, FitResult]:
    """Train the ``synthesis`` (log-mel MSE) or ``alignment`` (MSE in frames) model with Adam, a warm-up
    and inverse-square-root schedule and early stopping on its validation loss; resumes from
    ``ckpt_dir/last.pt`` and returns the best weights."""
    if not valid_clips:
        raise ValueError("no validation clips")
    _check(cfg, [*train_clips, *valid_clips])
    seed_everything(cfg.seed)
    model = build_model(cfg, kind).to(device or default_device())
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9)
    warmup = max(cfg.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, (warmup / (s + 1)) ** 0.5))
    if kind == "synthesis":
        step_loss, validate = _synthesis_loss, lambda m: {"val_loss": mel_mse(m, cfg, valid_clips)}
    else:
        step_loss, validate = _alignment_loss, lambda m: alignment_metrics(m, cfg, valid_clips)
    result = fit(
        model,
        optimizer,
        clip_batches(train_clips, cfg, seed=cfg.seed),
        step_loss,
        validate,
        ckpt_dir,
        LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience),
        log,
        scheduler=scheduler,
        progress=progress,
        desc=f"deep performer {kind}",
    )
    return model, result
