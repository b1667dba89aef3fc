"""The one resumable training loop every Baton model trains with.

Each model supplies its batches, a per-batch loss (or, for networks that learn together like a
GAN's generator and discriminators, a step that hands the loop one loss per network) and a
validation function; the loop owns everything that must behave the same across models: bf16
autocast on CUDA, gradient clipping, the learning-rate schedules, per-step logging, early
stopping on a monitored validation metric, atomic checkpoints and exact resumption. Resuming
skips the batches a checkpointed run already consumed, so with a deterministic (seeded) batch
stream an interrupted and resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from models import distributed
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
    grad_clip: float | None = 1.0  # max gradient norm per part; None leaves gradients as they are


@dataclass
class FitResult:
    steps: int
    best_step: int
    best_metric: float
    resumed_from: int | None
    stopped_early: bool


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(batch: Mapping[str, torch.Tensor], device: torch.device, keep: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """A batch moved to ``device``; the tensors named in ``keep`` stay where they are (lengths that
    packing needs on the CPU)."""
    return {k: v if k in keep else v.to(device, non_blocking=True) for k, v in batch.items()}


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@dataclass
class Part:
    """A network the loop trains with its own optimizer and, optionally, learning-rate schedule."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None


Update = Callable[[str, torch.Tensor], None]
"""``update(name, loss)``: backpropagate ``loss`` and step the named part's optimizer and schedule."""

TrainStep = Callable[[Any, Update], Mapping[str, torch.Tensor]]
"""``step(batch, update)``: compute each loss and hand it to ``update`` in the order the parts learn
(a GAN's discriminator before its generator); return the scalar tensors to log."""


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
    """Train ``model`` in place on one loss per batch; on return it carries the weights of the best validation.

    ``ckpt_dir/last.pt`` is written every ``loop.checkpoint_every`` steps and at the end and is
    resumed from when present; ``ckpt_dir/best.pt`` holds the best weights by ``monitor``
    (lower is better). Validation runs every ``loop.eval_every`` steps and at the last step.
    Under ``torchrun`` (see :mod:`models.distributed`) ``step_loss`` sees this process's slice of each
    batch and a model that averages gradients across processes.
    """
    replicated = distributed.wrap(model)

    def step(batch: Any, update: Update) -> dict[str, torch.Tensor]:
        loss = step_loss(replicated, batch)
        update("model", loss)
        return {"train_loss": loss}

    parts = {"model": Part(model, optimizer, scheduler)}
    return fit_parts(parts, batches, step, validate, ckpt_dir, loop, log, monitor, progress, desc)


def _bf16(device: torch.device) -> torch.autocast:
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def fit_parts(
    parts: Mapping[str, Part],
    batches: Iterator[Any],
    step: TrainStep,
    validate: Callable[[nn.Module], dict[str, float]],
    ckpt_dir: str,
    loop: LoopConfig,
    log: Callable[[dict[str, float], int], None],
    monitor: str = "val_loss",
    progress: bool = False,
    desc: str = "train",
) -> FitResult:
    """:func:`fit` for networks that learn together with one optimizer each, such as a GAN.

    The first part is the model: ``validate`` scores it, ``best.pt`` keeps its best weights, ``lr``
    logs its learning rate, and ``last.pt`` holds it in :func:`fit`'s layout (``model``, ``optimizer``,
    ``scheduler``). Every other part helps train it and is checkpointed beside it under its name
    (``discriminators``, ``discriminators_optimizer``, ``discriminators_scheduler``), so one file
    resumes them all. ``step`` runs under bf16 autocast on CUDA; the backward passes and optimizer
    steps it asks for through ``update`` run outside it, each part's gradients clipped on their own.

    In a process group each process trains on its slice of every batch; the logged losses are the
    mean over processes; only the main process logs, shows progress and writes checkpoints, and
    every process takes the main process's validation metrics, so all stop at the same step.
    Gradients are averaged only for networks ``step`` runs through :func:`models.distributed.wrap`,
    as :func:`fit` does.
    """
    ctx = distributed.current()
    batches = distributed.local_batches(batches)
    (_, model), *others = parts.items()
    helpers = {
        key: state
        for name, part in others
        for key, state in ((name, part.module), (f"{name}_optimizer", part.optimizer), (f"{name}_scheduler", part.scheduler))
    }
    device = model_device(model.module)
    last, best = Path(ckpt_dir) / "last.pt", Path(ckpt_dir) / "best.pt"
    state = Checkpoint(step=0, extra={"best_step": 0, "stale_evals": 0})
    resumed_from = None
    if last.exists():
        state = load_checkpoint(last, model.module, model.optimizer, model.scheduler, helpers)
        resumed_from = state.step
        next(itertools.islice(batches, state.step, state.step), None)  # skip the batches already trained on
    distributed.barrier()  # every process has read the checkpoint before the main one writes the next
    saved_at = resumed_from

    def stale() -> bool:
        return state.extra["stale_evals"] >= loop.patience

    def update(name: str, loss: torch.Tensor) -> None:
        part = parts[name]
        with torch.autocast("cuda", enabled=False):
            part.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if loop.grad_clip is not None:
                nn.utils.clip_grad_norm_(part.module.parameters(), loop.grad_clip)
            part.optimizer.step()
        if part.scheduler is not None:
            part.scheduler.step()

    for part in parts.values():
        part.module.train()
    bar = tqdm(total=loop.max_steps, initial=state.step, disable=not progress or not ctx.is_main, desc=desc)
    while state.step < loop.max_steps and not stale():
        lr = model.optimizer.param_groups[0]["lr"]
        with _bf16(device):
            losses = step(next(batches), update)
        metrics = distributed.mean_over_ranks({name: value.item() for name, value in losses.items()}) | {"lr": lr}
        state.step += 1
        bar.update()
        if state.step % loop.eval_every == 0 or state.step == loop.max_steps:
            model.module.eval()
            with torch.no_grad(), _bf16(device):
                metrics |= distributed.from_main(validate(model.module))
            model.module.train()
            bar.set_postfix({monitor: f"{metrics[monitor]:.4g}"})
            if metrics[monitor] < state.best_metric:
                state.best_metric = metrics[monitor]
                state.extra |= {"best_step": state.step, "stale_evals": 0}
                if ctx.is_main:
                    save_weights(best, model.module)
            else:
                state.extra["stale_evals"] += 1
        if ctx.is_main:
            log(metrics, state.step)
        if state.step % loop.checkpoint_every == 0:
            if ctx.is_main:
                save_checkpoint(last, model.module, model.optimizer, state, model.scheduler, helpers)
            distributed.barrier()
            saved_at = state.step
    bar.close()
    if state.step != saved_at and ctx.is_main:
        save_checkpoint(last, model.module, model.optimizer, state, model.scheduler, helpers)
    distributed.barrier()  # last.pt and best.pt are complete before any process reads them
    if best.exists():
        load_weights(best, model.module)
    return FitResult(
        steps=state.step,
        best_step=int(state.extra["best_step"]),
        best_metric=state.best_metric,
        resumed_from=resumed_from,
        stopped_early=stale(),
    )
