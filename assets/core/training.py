"""What every training asset does the same way: profiles, checkpoint folders, logging, registration."""

import os
from dataclasses import replace
from typing import Any

import dagster as dg
import mlflow

from assets.core.resources import HomeResource
from models.training import FitResult
from storage.tracking import MlflowResource


def profile_config(profiles: dict[str, Any], profile: str, seed: int, max_steps: int = 0) -> Any:
    """The named profile's model config with the run's seed and, when non-zero, its step budget."""
    if profile not in profiles:
        raise dg.Failure(f"unknown profile {profile!r}: use one of {sorted(profiles)}")
    cfg = replace(profiles[profile], seed=seed)
    return replace(cfg, max_steps=max_steps) if max_steps else cfg


def checkpoint_dir(context: dg.AssetExecutionContext, home: HomeResource, *parts: str) -> str:
    """Retries and re-executions of one run share the checkpoint directory, so they resume; a new run starts over."""
    return os.path.join(home.home.checkpoints, *parts, context.run.root_run_id or context.run_id)


def log_step(metrics: dict[str, float], step: int) -> None:
    """Every 10th training step and every evaluation: per-step writes would dominate a CPU run."""
    if step % 10 == 0 or "val_loss" in metrics:
        mlflow.log_metrics(metrics, step=step)


def register_model(tracking: MlflowResource, run: mlflow.ActiveRun, model_dir: str, name: str, tags: dict[str, str]) -> str:
    """Log the saved model folder as the run's `model` artifact and register it as `<name>@candidate`."""
    mlflow.log_artifacts(model_dir, "model")
    return tracking.register(name, run.info.run_id, "model", tags=tags)


def training_metadata(name: str, version: str, result: FitResult, run_url: str) -> dict:
    return {
        "registered_model": name,
        "version": version,
        "best_val_loss": result.best_metric,
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "resumed_from": result.resumed_from if result.resumed_from is not None else -1,
        "mlflow_run": run_url,
    }
