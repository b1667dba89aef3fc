"""CLIPSonic diffusion training through the shared loop, :func:`models.training.fit`."""

from __future__ import annotations

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
    model: ClipSonicUNet, scheduler: DDPMScheduler, fixed: Sequence[dict[str, torch.Tensor]]
) -> dict[str, float]:
    """``val_loss``: the mean conditional denoising MSE over fixed crops, timesteps and noise."""
    device = model_device(model)
    total = sum(denoising_loss(model, scheduler, to_device(b, device)).item() * len(b["mels"]) for b in fixed)
    return {"val_loss": total / sum(len(b["mels"]) for b in fixed)}


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
    scheduler = noise_scheduler(cfg)
    fixed = validation_batches(valid, cfg)

    def step_loss(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return denoising_loss(m, scheduler, to_device(batch, model_device(m)))

    result = fit(
        model,
        optimizer,
        batches(train, cfg),
        step_loss,
        lambda m: validate(m, scheduler, fixed),
        ckpt_dir,
        LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience),
        log,
        progress=progress,
        desc="clipsonic diffusion",
    )
    return model, result
