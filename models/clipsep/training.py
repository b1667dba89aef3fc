"""CLIPSep training through the shared loop, :func:`models.training.fit`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from models.checkpoints import seed_everything
from models.clipsep.config import CLIPSepConfig
from models.clipsep.losses import objective
from models.clipsep.mixtures import Mixture, Source, deterministic_mixtures, mixture_batches, stack_mixtures
from models.clipsep.network import CLIPSep, build_model
from models.training import FitResult, LoopConfig, default_device, fit, model_device, to_device


def lr_multiplier(step: int, cfg: CLIPSepConfig) -> float:
    """Linear warm-up to ``cfg.lr`` over ``warmup_steps``, then linear decay to zero at ``max_steps``."""
    warmup = max(cfg.warmup_steps, 1)
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (cfg.max_steps - step) / max(cfg.max_steps - warmup, 1))


@torch.no_grad()
def validate(model: CLIPSep, mixtures: Sequence[Mixture]) -> dict[str, float]:
    """Mean of each :func:`objective` term over fixed mixtures; ``val_loss`` is the training loss."""
    device = model_device(model)
    totals: dict[str, float] = {}
    for b in range(0, len(mixtures), model.cfg.batch_size):
        chunk = mixtures[b : b + model.cfg.batch_size]
        batch = to_device(stack_mixtures(chunk), device)
        for key, value in objective(model, batch["mixture"], batch["sources"], batch["queries"]).items():
            totals[key] = totals.get(key, 0.0) + value.item() * len(chunk)
    return {f"val_{k}": v / len(mixtures) for k, v in totals.items()}


def train(
    cfg: CLIPSepConfig,
    train_sources: Sequence[Source],
    val_sources: Sequence[Source],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[CLIPSep, FitResult]:
    """Train with Adam and early stopping on ``val_loss`` over fixed validation mixtures.

    Resumes from ``ckpt_dir/last.pt`` when present; the returned model carries the best weights.
    """
    seed_everything(cfg.seed)
    model = build_model(cfg).to(device or default_device())
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(step, cfg))
    val_mixtures = deterministic_mixtures(val_sources, cfg.n_val_mixtures, cfg.seed)

    def step_loss(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = to_device(batch, model_device(m))
        return objective(m, batch["mixture"], batch["sources"], batch["queries"])["loss"]

    result = fit(
        model,
        optimizer,
        mixture_batches(train_sources, cfg, seed=cfg.seed),
        step_loss,
        lambda m: validate(m, val_mixtures),
        ckpt_dir,
        LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience),
        log,
        scheduler=scheduler,
        progress=progress,
        desc=f"clipsep ({cfg.method})",
    )
    return model, result
