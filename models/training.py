"""The one resumable training loop every Baton model trains with.

Each model supplies its batches, a per-batch loss and a validation function; the loop owns
everything that must behave the same across models: bf16 autocast on CUDA, gradient clipping,
the learning-rate schedule, per-step logging, early stopping on a monitored validation metric,
atomic checkpoints and exact resumption. Resuming skips the batches a checkpointed run already
consumed, so with a deterministic (seeded) batch stream an interrupted and resumed run ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from models.checkpoints import (
    Checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
)


@dataclass
class LoopConfig:
    max_steps: int
    eval_every: int
    checkpoint_every: int
    patience: int  # evaluations without improvement of the monitored metric before stopping
    grad_clip: float = 1.0


@dataclass
class FitResult:
    steps: int
    best_step: int
    best_metric: float
    resumed_from: int | None
    stopped_early: bool


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[Any],
    step_loss: Callable[[nn.Module, Any], torch.Tensor],
    validate: Callable[[nn.Module], dict[str, float]],
    ckpt_dir: str,
    loop: LoopConfig,
    log: Callable[[dict[str, float], int], None],
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    monitor: str = "val_loss",
    progress: bool = False,
    desc: str = "train",
) -> FitResult:
    """Train ``model`` in place; on return it carries the weights of the best validation.

    ``ckpt_dir/last.pt`` is written every ``loop.checkpoint_every`` steps and at the end and is
    resumed from when present; ``ckpt_dir/best.pt`` holds the best weights by ``monitor``
    (lower is better). Validation runs every ``loop.eval_every`` steps and at the last step.
    """
    device = model_device(model)
    last, best = Path(ckpt_dir) / "last.pt", Path(ckpt_dir) / "best.pt"
    state = Checkpoint(step=0, extra={"best_step": 0, "stale_evals": 0})
    resumed_from = None
    if last.exists():
        state = load_checkpoint(last, model, optimizer, scheduler)
        resumed_from = state.step
        next(itertools.islice(batches, state.step, state.step), None)  # skip the batches already trained on
    saved_at = resumed_from

    def stale() -> bool:
        return state.extra["stale_evals"] >= loop.patience

    model.train()
    bar = tqdm(total=loop.max_steps, initial=state.step, disable=not progress, desc=desc)
    while state.step < loop.max_steps and not stale():
        batch = next(batches)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = step_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), loop.grad_clip)
        metrics = {"train_loss": loss.item(), "lr": optimizer.param_groups[0]["lr"]}
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        state.step += 1
        bar.update()
        if state.step % loop.eval_every == 0 or state.step == loop.max_steps:
            model.eval()
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                metrics |= validate(model)
            model.train()
            bar.set_postfix({monitor: f"{metrics[monitor]:.4g}"})
            if metrics[monitor] < state.best_metric:
                state.best_metric = metrics[monitor]
                state.extra |= {"best_step": state.step, "stale_evals": 0}
                save_weights(best, model)
            else:
                state.extra["stale_evals"] += 1
        log(metrics, state.step)
        if state.step % loop.checkpoint_every == 0:
            save_checkpoint(last, model, optimizer, state, scheduler)
            saved_at = state.step
    bar.close()
    if state.step != saved_at:
        save_checkpoint(last, model, optimizer, state, scheduler)
    if best.exists():
        load_weights(best, model)
    return FitResult(
        steps=state.step,
        best_step=int(state.extra["best_step"]),
        best_metric=state.best_metric,
        resumed_from=resumed_from,
        stopped_early=stale(),
    )
