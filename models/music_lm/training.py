"""Next-token loss, the deterministic evaluation and a resumable training loop.

Logging goes through a callback, so the loop knows nothing about the tracking backend.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.checkpoints import seed_everything
from models.music_lm.batches import IGNORE_INDEX, eval_windows
from models.music_lm.config import LMConfig
from models.music_lm.network import build_model
from models.training import FitResult, LoopConfig, default_device, fit


def _nll(model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token NLL (float32) and the number of predicted tokens of a crop batch.

    Padded inputs become token 0: padding is only on the right and the models are causal,
    so they only influence predictions whose targets are padding too.
    """
    inputs, targets = batch[:, :-1].clamp(min=0), batch[:, 1:]
    logits = model(inputs).float()
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return loss, (targets != IGNORE_INDEX).sum()


@torch.no_grad()
def evaluate(
    model: nn.Module, sequences: Iterable[np.ndarray], seq_len: int, device: torch.device | str, batch_size: int = 64
) -> dict[str, float]:
    """Mean NLL per token (nats), its perplexity and the token count, in float32 without dropout."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    windows = eval_windows(sequences, seq_len)
    while chunk := list(itertools.islice(windows, batch_size)):
        loss, n = _nll(model, torch.from_numpy(np.stack(chunk)).to(device))
        total += loss.item()
        count += int(n)
    model.train(was_training)
    if not count:
        raise ValueError("no validation sequence has at least 2 tokens")
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": count}


def train(
    cfg: LMConfig,
    batches: Iterator[torch.Tensor],
    val_sequences: Callable[[], Iterable[np.ndarray]],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[nn.Module, FitResult]:
    """Train with Adam and early stopping on the validation loss through :func:`models.training.fit`.

    ``batches`` must be a deterministic stream (e.g. ``crop_batches`` with the same seed) so
    that a resumed run skips exactly the batches it already trained on.
    """
    device = device or default_device()
    seed_everything(cfg.seed)
    model = build_model(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def step_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        loss_sum, count = _nll(model, batch.to(device))
        return loss_sum / count

    def validate(model: nn.Module) -> dict[str, float]:
        val = evaluate(model, val_sequences(), cfg.seq_len, device)
        return {"val_loss": val["loss"], "val_perplexity": val["perplexity"]}

    loop = LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience)
    result = fit(model, optimizer, batches, step_loss, validate, ckpt_dir, loop, log, progress=progress, desc=f"{cfg.arch} LM")
    return model, result
