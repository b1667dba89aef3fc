"""MMT's objective, its validation metrics and the resumable training run."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from models import distributed
from models.checkpoints import seed_everything
from models.mmt.batches import make_batches, val_batches
from models.mmt.config import MMTConfig
from models.mmt.encoding import FIELDS
from models.mmt.network import MMT
from models.training import FitResult, LoopConfig, default_device, fit, model_device

IGNORE_INDEX = -100


def lr_multiplier(step: int, cfg: MMTConfig) -> float:
    """Factor on ``cfg.lr`` after ``step`` optimizer steps (warm-up, linear decay, then flat)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if step >= cfg.decay_end_step:
        return cfg.final_lr_fraction
    progress = (step - cfg.warmup_steps) / (cfg.decay_end_step - cfg.warmup_steps)
    return 1.0 - (1.0 - cfg.final_lr_fraction) * progress


def field_losses(model: MMT, codes: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-event cross-entropy per field (float32, shape (6,)) and the number of targets.

    Padding is on the right and attention is causal, so padded rows only feed predictions whose
    targets are padding, which the loss skips.
    """
    logits = model(codes[:, :-1])
    targets = codes[:, 1:].masked_fill(~mask[:, 1:, None], IGNORE_INDEX)
    sums = torch.stack(
        [
            F.cross_entropy(out.float().flatten(0, 1), targets[..., i].flatten(), reduction="sum")
            for i, out in enumerate(logits)
        ]
    )
    return sums, mask[:, 1:].sum()


def loss(model: MMT, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """MMT's objective: the sum over the six fields of the mean cross-entropy per target event (of the
    whole global batch when data-parallel: songs differ in length)."""
    device = model_device(model)
    sums, count = field_losses(model, batch["codes"].to(device), batch["mask"].to(device))
    return distributed.target_mean(sums.sum(), count)


@torch.no_grad()
def evaluate(model: MMT, batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, float]:
    """``val_loss`` (as :func:`loss`, over every target of ``batches``) and ``val_<field>_loss``."""
    device = model_device(model)
    total, count = torch.zeros(len(FIELDS), device=device), 0
    for batch in batches:
        sums, n = field_losses(model, batch["codes"].to(device), batch["mask"].to(device))
        total += sums
        count += int(n)
    if not count:
        raise ValueError("no validation targets")
    per_field = (total / count).tolist()
    return {"val_loss": sum(per_field)} | {f"val_{f}_loss": v for f, v in zip(FIELDS, per_field)}


def train(
    cfg: MMTConfig,
    train_seqs: Sequence[np.ndarray],
    val_seqs: Sequence[np.ndarray],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | str | None = None,
    progress: bool = False,
) -> tuple[MMT, FitResult]:
    """Train with Adam and the warm-up/decay schedule, early stopping on ``val_loss``.

    Resumes from ``ckpt_dir/last.pt`` when it exists; the model returned carries the best weights.
    """
    device = torch.device(device) if device is not None else default_device()
    seed_everything(cfg.seed)
    model = MMT(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(step, cfg))
    val = val_batches(val_seqs, cfg)
    result = fit(
        model,
        optimizer,
        make_batches(train_seqs, cfg, cfg.seed),
        loss,
        lambda m: evaluate(m, val),
        ckpt_dir,
        LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience, cfg.grad_clip),
        log,
        scheduler=scheduler,
        monitor="val_loss",
        progress=progress,
        desc="MMT",
    )
    return model, result
