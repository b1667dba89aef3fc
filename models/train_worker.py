"""One process of a data-parallel training run: ``torchrun --nproc-per-node N -m models.train_worker spec.json``.

The spec (JSON) names the model ``kind`` (a key of :data:`TRAINERS`), its ``config`` (the config
dataclass as a dict), ``data`` (the training and validation examples, written by :func:`save_data`),
``ckpt_dir``, ``model_dir``, ``metrics`` and ``result``. Every process trains (see
:mod:`models.distributed`); the main one appends each logged step to ``metrics`` as a JSON line
(``{"step": s, "metrics": {...}}``) as it goes, so the launching process can forward them while
training runs, then writes the model folder and the :class:`~models.training.FitResult` to ``result``.
Plain files rather than Dagster Pipes: models/ imports nothing of Dagster.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models import clipsep, deep_performer, distributed, mmt
from models.checkpoints import safe_load
from models.clipsep.config import CLIPSepConfig
from models.training import FitResult

Log = Callable[[dict[str, float], int], None]


def _to_tensors(value: Any) -> Any:
    """Arrays, and the array fields of dataclass examples (as dicts), as tensors; scalars as Python's."""
    if is_dataclass(value):
        return {f.name: _to_tensors(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    return value.item() if isinstance(value, np.generic) else value


def _to_arrays(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _to_arrays(field) for name, field in value.items()}
    return value.numpy() if isinstance(value, torch.Tensor) else value


def save_data(path: str | os.PathLike, train: Sequence[Any], valid: Sequence[Any]) -> None:
    """The training and validation examples (arrays or dataclasses of arrays and scalars) in a file
    ``weights_only`` loading reads back: no pickled objects cross to the training processes."""
    torch.save({"train": [_to_tensors(x) for x in train], "valid": [_to_tensors(x) for x in valid]}, path)


def load_data(path: str | os.PathLike, make: Callable[..., Any] | None = None) -> tuple[list[Any], list[Any]]:
    """The training and validation examples of :func:`save_data`'s file as arrays, or as the
    dataclass ``make`` rebuilt from their fields."""
    data = safe_load(path)
    rebuild = (lambda x: make(**_to_arrays(x))) if make else _to_arrays
    return [rebuild(x) for x in data["train"]], [rebuild(x) for x in data["valid"]]


Trained = tuple[nn.Module, FitResult, Callable[[str], None]]
"""The model, how its training went and how to write its model folder."""


def _mmt(config: dict, data: str, ckpt_dir: str, log: Log, device: torch.device) -> Trained:
    cfg = mmt.MMTConfig(**config)
    model, result = mmt.train(cfg, *load_data(data), ckpt_dir, log, device=device)
    return model, result, lambda out: mmt.save_model(model, cfg, out)


def _clipsep(config: dict, data: str, ckpt_dir: str, log: Log, device: torch.device) -> Trained:
    cfg = CLIPSepConfig(**config)
    model, result = clipsep.train(cfg, *load_data(data, clipsep.Source), ckpt_dir, log, device=device)
    return model, result, lambda out: clipsep.save_model(model, cfg, out)


def _deep_performer(kind: str) -> Callable[..., Trained]:
    def trainer(config: dict, data: str, ckpt_dir: str, log: Log, device: torch.device) -> Trained:
        cfg = deep_performer.DeepPerformerConfig(**config)
        model, result = deep_performer.train(kind, cfg, *load_data(data, deep_performer.Clip), ckpt_dir, log, device=device)
        return model, result, lambda out: deep_performer.save_model(model, cfg, out)

    return trainer


TRAINERS = {
    "mmt": _mmt,
    "clipsep": _clipsep,
    "deep_performer_synthesis": _deep_performer("synthesis"),
    "deep_performer_alignment": _deep_performer("alignment"),
}


def run(spec: dict) -> FitResult:
    """Train as ``spec`` says in this process of the group (or alone)."""
    if spec["kind"] not in TRAINERS:
        raise ValueError(f"unknown model kind {spec['kind']!r}: use one of {sorted(TRAINERS)}")
    ctx = distributed.init_from_env()
    metrics = Path(spec["metrics"])
    with open(metrics, "a") if ctx.is_main else open(os.devnull, "w") as out:

        def log(values: dict[str, float], step: int) -> None:
            out.write(json.dumps({"step": step, "metrics": values}) + "\n")
            out.flush()

        _, result, save = TRAINERS[spec["kind"]](spec["config"], spec["data"], spec["ckpt_dir"], log, ctx.device)
    if ctx.is_main:
        save(spec["model_dir"])
        Path(spec["result"]).write_text(json.dumps(asdict(result)))
    distributed.barrier()
    distributed.shutdown()
    return result


def read_result(path: str | os.PathLike) -> FitResult:
    return FitResult(**json.loads(Path(path).read_text()))


if __name__ == "__main__":
    run(json.loads(Path(sys.argv[1]).read_text()))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown, which can abort in torch's and pyarrow's threads
