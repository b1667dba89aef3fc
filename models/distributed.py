"""Data-parallel training over processes started by ``torchrun``: one process per GPU (NCCL) or per
CPU share (gloo).

Every process draws the same seeded stream of global batches and trains on its own contiguous
slice of each, and DistributedDataParallel averages the gradients. For a loss that is a mean over
the rows of a batch, N processes with B/N rows each then take the very steps one process takes on
batches of B rows, and resuming stays exact: the stream does not depend on the number of processes.
A loss that is a mean over a varying number of targets per row (tokens or frames next to padding)
goes through :func:`target_mean`, which divides by the target count of the whole global batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """The process that logs, shows progress and writes checkpoints and the model."""
        return self.rank == 0


def init_from_env() -> Dist:
    """Join the process group ``torchrun`` describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT):
    NCCL on ``cuda:LOCAL_RANK`` when CUDA is present, gloo on the CPU otherwise. Without WORLD_SIZE,
    the one process of a plain run."""
    if "WORLD_SIZE" not in os.environ:
        return current()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return current()


def current() -> Dist:
    """This process's place in the group, or the single process when no group is initialized."""
    if not dist.is_initialized():
        return Dist(0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    return Dist(dist.get_rank(), dist.get_world_size(), device)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class _Replicated(nn.parallel.DistributedDataParallel):
    """DDP that lets a loss read its network's attributes (``model.cfg``) as on the bare module."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model: nn.Module) -> nn.Module:
    """``model`` whose backward passes average gradients across processes; itself in a single process.

    On GPUs its batch norms become SyncBatchNorm (in place, same parameters and buffers), so they
    normalize over the global batch as one process would; gloo has no SyncBatchNorm, so on the CPU
    each process normalizes over its own rows.
    """
    ctx = current()
    if ctx.world_size == 1:
        return model
    if ctx.device.type != "cuda":
        return _Replicated(model)
    return _Replicated(nn.SyncBatchNorm.convert_sync_batchnorm(model), device_ids=[ctx.device.index])


def local_slice(batch: Any, ctx: Dist | None = None) -> Any:
    """This process's contiguous rows of a global batch: every tensor (in nested dicts, lists and
    tuples) cut along its first dimension, whose size the number of processes must divide."""
    ctx = ctx or current()
    if ctx.world_size == 1:
        return batch
    if isinstance(batch, torch.Tensor) and batch.ndim:
        if batch.shape[0] % ctx.world_size:
            raise ValueError(f"a batch of {batch.shape[0]} rows does not split over {ctx.world_size} processes")
        size = batch.shape[0] // ctx.world_size
        return batch[ctx.rank * size : (ctx.rank + 1) * size]
    if isinstance(batch, dict):
        return {key: local_slice(value, ctx) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(local_slice(value, ctx) for value in batch)
    return batch


def local_batches(batches: Iterator[Any]) -> Iterator[Any]:
    """:func:`local_slice` of every batch of a global stream."""
    ctx = current()
    return batches if ctx.world_size == 1 else (local_slice(batch, ctx) for batch in batches)


def target_mean(total: torch.Tensor, count: torch.Tensor | int) -> torch.Tensor:
    """The loss ``total / count`` of a process's targets, scaled so that DDP's mean of the processes'
    gradients is the gradient of the mean over every target of the global batch (and the mean of the
    processes' values is that mean): ``total * world_size / sum of every process's count``."""
    ctx = current()
    if ctx.world_size == 1:
        return total / count
    counts = torch.as_tensor(count, dtype=torch.float64, device=total.device).detach().clone()
    dist.all_reduce(counts)
    return total * (ctx.world_size / counts.to(total.dtype))


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the processes (every process passes the same keys)."""
    ctx = current()
    if ctx.world_size == 1 or not values:
        return values
    stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=ctx.device)
    dist.all_reduce(stacked)
    return dict(zip(values, (stacked / ctx.world_size).tolist()))


def from_main(value: Any) -> Any:
    """The main process's ``value`` on every process, so decisions taken on it (best weights, early
    stopping) are the same everywhere and no process waits on a collective the others skipped."""
    if current().world_size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if current().world_size > 1:
        dist.barrier()
