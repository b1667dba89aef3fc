"""Training checkpoints that survive crashes and resume bit-for-bit.

A checkpoint holds everything a training loop needs to continue as if it had never
stopped: model and optimizer (and scheduler) state, those of any further networks trained
alongside (a GAN's discriminators), the step, the best validation metric, loop-specific
counters and the state of every random number generator. Files are written to a temporary
name and moved into place with ``os.replace`` so a crash mid-write leaves the previous
checkpoint intact, and they are read with ``torch.load(weights_only=True)``, so loading
never unpickles arbitrary objects.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import pickle
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np
import torch


class UnsafeModelFile(ValueError):
    """A weights or checkpoint file ``weights_only`` loading refused: it holds pickled objects that
    could run code, not just tensors, so it is never loaded."""


def safe_load(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` on the CPU; a refused pickle is an :class:`UnsafeModelFile`
    naming the file, so callers report it in one line instead of the unpickler's traceback."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UnsafeModelFile(f"model file is not a safe state dict: {path}") from None


@dataclass
class Checkpoint:
    """What a loop restores besides the weights and optimizer state."""

    step: int
    best_metric: float = math.inf
    extra: dict[str, float] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all CUDA devices included)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """The state of every global generator, in types ``weights_only`` loading accepts."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`; CUDA state is restored only where CUDA exists."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights(path: str | os.PathLike, model: torch.nn.Module) -> None:
    atomic_save(model.state_dict(), path)


def load_weights(path: str | os.PathLike, model: torch.nn.Module) -> None:
    model.load_state_dict(safe_load(path))


def save_model_dir(out_dir: str | os.PathLike, model: torch.nn.Module, config: Mapping[str, Any]) -> None:
    """The layout every registered model is logged as: ``model.pt`` (a state_dict) and ``config.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(out / "model.pt", model)
    (out / "config.json").write_text(json.dumps(dict(config), indent=2))


def read_model_config(out_dir: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(out_dir) / "config.json").read_text())


def load_model_dir(out_dir: str | os.PathLike, model: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """``model`` (built from :func:`read_model_config`) with the folder's weights, in eval mode on ``device``."""
    load_weights(Path(out_dir) / "model.pt", model)
    return model.to(device).eval()


class Stateful(Protocol):
    """What a checkpoint stores: a network, an optimizer or a learning-rate scheduler."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> Any: ...


_RESERVED = frozenset({"model", "optimizer", "scheduler", "step", "best_metric", "extra", "rng"})


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    checkpoint: Checkpoint,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    others: Mapping[str, Stateful | None] | None = None,
) -> None:
    """Write model, optimizer, scheduler, loop state and RNG states atomically.

    ``others`` are further states by name, such as a GAN's discriminators with their own optimizer
    and scheduler; they sit beside the model's in the same file (``None`` is stored as ``None``).
    """
    others = dict(others or {})
    if clash := _RESERVED & others.keys():
        raise ValueError(f"checkpoint keys {sorted(clash)} are taken by the model and loop state")
    atomic_save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            **{name: part.state_dict() if part is not None else None for name, part in others.items()},
            "step": checkpoint.step,
            "best_metric": checkpoint.best_metric,
            "extra": dict(checkpoint.extra),
            "rng": capture_rng_state(),
        },
        path,
    )


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    others: Mapping[str, Stateful | None] | None = None,
) -> Checkpoint:
    """Restore states in place (RNGs and the ``others`` :func:`save_checkpoint` wrote included) and
    return the loop state; a ``None`` optimizer, scheduler or other is left as it is.

    Tensors are loaded on the CPU; ``load_state_dict`` moves them to the model's device.
    """
    state = safe_load(path)
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler, **(others or {})}
    for name, part in parts.items():
        if part is not None:
            part.load_state_dict(state[name])
    restore_rng_state(state["rng"])
    return Checkpoint(step=state["step"], best_metric=state["best_metric"], extra=state["extra"])


LOCK_FILE = ".lock"
RESUME_FILES = frozenset({"last.pt", "best.pt"})  # what resuming reads; everything else in a folder is scratch


class CheckpointInUse(RuntimeError):
    """Another process holds the checkpoint folder: two runs writing one ``last.pt`` would corrupt
    each other's resume point."""


@contextmanager
def locked_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """``folder`` (created if needed) held with an exclusive ``flock`` on its lock file until exit;
    :class:`CheckpointInUse` at once when another process holds it. The lock dies with its process,
    so a killed run never leaves the folder locked."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointInUse(f"checkpoint folder {folder} is in use by another training run") from None
        yield folder


def keep_only(folder: str | os.PathLike, names: frozenset[str] = RESUME_FILES) -> None:
    """Remove everything in ``folder`` but ``names`` and the lock: an exported model already logged,
    temporary files a killed write left."""
    for path in Path(folder).iterdir():
        if path.name in names or path.name == LOCK_FILE:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def prune_folders(parent: str | os.PathLike, current: str, keep_newest: int, max_age_s: float) -> list[Path]:
    """Remove the checkpoint folders in ``parent`` other than ``current`` that are older than
    ``max_age_s`` or beyond the ``keep_newest`` most recently written; one in use is left. The removed."""
    others = sorted(
        (p for p in Path(parent).iterdir() if p.is_dir() and not p.is_symlink() and p.name != current),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    now, removed = time.time(), []
    for rank, folder in enumerate(others):
        if rank < keep_newest and now - folder.stat().st_mtime <= max_age_s:
            continue
        try:
            with locked_folder(folder):
                shutil.rmtree(folder)
        except CheckpointInUse:
            continue
        removed.append(folder)
    return removed
