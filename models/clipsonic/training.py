"""CLIPSonic diffusion training through the shared loop, :func:`models.training.fit`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from diffusers import DDPMScheduler
from torch import nn

from models.checkpoints import seed_everything
from models.clipsonic.config import ClipSonicConfig
from models.clipsonic.data import MelSet, batches, validation_batches
from models.clipsonic.diffusion import denoising_loss, noise_scheduler
from models.clipsonic.network import ClipSonicUNet, build_model
from models.training import FitResult, LoopConfig, default_device, fit, model_device, to_device


@torch.no_grad()
def validate(
    model: ClipSonicUNet, scheduler: DDPMScheduler, fixed: Sequence[dict[str, torch.Tensor]], gamma: float | None = None
) -> dict[str, float]:
    """``val_loss``: the mean conditional denoising loss over fixed crops, timesteps and noise."""
    device = model_device(model)
    total = sum(denoising_loss(model, scheduler, to_device(b, device), gamma).item() * len(b["mels"]) for b in fixed)
    return {"val_loss": total / sum(len(b["mels"]) for b in fixed)}


def lr_multiplier(step: int, cfg: ClipSonicConfig) -> float:
    """A linear warm-up over ``cfg.warmup_steps``, then constant, or with ``cfg.lr_floor`` a cosine
    decay to ``lr_floor`` at ``cfg.max_steps``: a short CPU run ends on small steps, as averaging would."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_floor is None:
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * progress))


def train(
    cfg: ClipSonicConfig,
    train: MelSet,
    valid: MelSet,
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[ClipSonicUNet, FitResult]:
    """Train with AdamW and early stopping on ``val_loss``.

    Resumes from ``ckpt_dir/last.pt`` when present; the returned model carries the best weights.
    """
    seed_everything(cfg.seed)
    model = build_model(cfg).to(device or default_device())
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(step, cfg))
    scheduler = noise_scheduler(cfg)
    fixed = validation_batches(valid, cfg)

    def step_loss(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return denoising_loss(m, scheduler, to_device(batch, model_device(m)), cfg.min_snr_gamma)

    result = fit(
        model,
        optimizer,
        batches(train, cfg),
        step_loss,
        lambda m: validate(m, scheduler, fixed, cfg.min_snr_gamma),
        ckpt_dir,
        LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience),
        log,
        scheduler=lr_schedule,
        progress=progress,
        desc="clipsonic diffusion",
    )
    return model, result
