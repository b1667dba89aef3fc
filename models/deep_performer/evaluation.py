"""How far the models are from clips: the per-batch errors the training losses are made of, and
the validation metrics over whole clips."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from models.deep_performer.clips import Clip, collate
from models.deep_performer.config import FRAME_RATE, DeepPerformerConfig
from models.training import model_device, to_device


def mel_errors(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of squared log-mel errors over the valid frames, and the number of values summed."""
    batch = to_device(batch, model_device(model))
    error = (model(batch).float() - batch["mel"]) ** 2 * batch["frame_mask"][..., None]
    return error.sum(), batch["frame_mask"].sum() * batch["mel"].shape[-1]


def alignment_errors(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_notes, 2) onset and duration errors in frames of the real notes of a batch."""
    batch = to_device(batch, model_device(model))
    target = torch.stack(
        [batch["onset_frame"] - batch["onset_frame"][:, :1], batch["offset_frame"] - batch["onset_frame"]], -1
    )
    return (model(batch) - target.float())[batch["note_mask"]], batch["note_mask"].sum()


def _eval_batches(clips: Sequence[Clip], cfg: DeepPerformerConfig) -> Iterator[dict[str, torch.Tensor]]:
    """Whole clips in order, uncropped."""
    for start in range(0, len(clips), cfg.batch_size):
        yield collate(clips[start : start + cfg.batch_size])


@torch.no_grad()
def mel_mse(model: nn.Module, cfg: DeepPerformerConfig, clips: Sequence[Clip]) -> float:
    """Mean squared log-mel error over all valid frames of ``clips`` (Table 5.1's metric).

    The synthesis model gets the clips' aligned note frames, so the metric measures it alone.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in _eval_batches(clips, cfg):
        error, n = mel_errors(model, batch)
        total, count = total + error.item(), count + int(n)
    model.train(was_training)
    return total / count


@torch.no_grad()
def alignment_metrics(model: nn.Module, cfg: DeepPerformerConfig, clips: Sequence[Clip]) -> dict[str, float]:
    """``val_loss``: MSE in frames² over the onsets and durations of all notes of ``clips``;
    ``val_onset_mae_ms`` and ``val_duration_mae_ms``: mean absolute errors in milliseconds."""
    was_training = model.training
    model.eval()
    errors = torch.cat([alignment_errors(model, batch)[0].cpu() for batch in _eval_batches(clips, cfg)])
    model.train(was_training)
    mae_ms = errors.abs().mean(0) * 1000.0 / FRAME_RATE
    return {
        "val_loss": (errors**2).mean().item(),
        "val_onset_mae_ms": mae_ms[0].item(),
        "val_duration_mae_ms": mae_ms[1].item(),
    }
