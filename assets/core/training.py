"""What every training asset does the same way: profiles, checkpoint folders, logging, registration."""

import hashlib
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, replace
from typing import Any

import dagster as dg
import mlflow

from assets.core.resources import HomeResource
from models.checkpoints import CheckpointInUse, keep_only, locked_folder, prune_folders
from models.training import FitResult
from storage import shards
from storage.names import UnsafeName, check_name, inside
from storage.remote_dirs import mirrored, pull_dir
from storage.tracking import MlflowResource

KEEP_OTHER_CONFIGS = 3  # checkpoint folders of other configs kept per asset and partition, newest first
MAX_CHECKPOINT_AGE_S = 14 * 24 * 3600  # ... and only while written to in the last two weeks
RESUME_POINT = "last.pt"  # the checkpoint fit resumes from: a remote copy commits with it


def profile_config(profiles: dict[str, Any], profile: str, seed: int, max_steps: int = 0) -> Any:
    """The named profile's model config with the run's seed and, when non-zero, its step budget."""
    if profile not in profiles:
        raise dg.Failure(f"unknown profile {profile!r}: use one of {sorted(profiles)}")
    cfg = replace(profiles[profile], seed=seed)
    return replace(cfg, max_steps=max_steps) if max_steps else cfg


def input_versions(context: dg.AssetExecutionContext, home: HomeResource) -> dict[str, str]:
    """The data version of every upstream shard set the asset trains on: its own partition of a
    dependency partitioned like it, every partition of the others."""
    root, versions = home.home.datasets, {}
    for dep in context.assets_def.get_asset_spec(context.asset_key).deps:
        asset = dep.asset_key.to_user_string()
        same = context.has_partition_key and dep.partition_mapping is None
        for partition in [context.partition_key] if same else shards.list_partitions(root, asset):
            manifest = shards.read_manifest(root, asset, partition)
            if manifest is not None:
                versions[f"{asset}/{partition}"] = manifest.version
    return versions


def config_key(cfg: Any, inputs: dict[str, str]) -> str:
    """A name for one training setup: the model config (seed included) and the input data versions.
    The step budget is left out, so a longer budget continues the same training."""
    setup = {"config": {k: v for k, v in asdict(cfg).items() if k != "max_steps"}, "inputs": inputs}
    return hashlib.sha256(json.dumps(setup, sort_keys=True, default=str).encode()).hexdigest()[:16]


@contextmanager
def checkpoint_dir(context: dg.AssetExecutionContext, home: HomeResource, cfg: Any, *parts: str) -> Iterator[str]:
    """The checkpoint folder of this asset, partition and config, held for this run until exit.

    Any run with the same setup (a retry, a re-execution, the same command again) resumes from its
    last checkpoint; another setup starts fresh. A second run of the same setup fails at once rather
    than write the same checkpoint. On success only the final checkpoint stays; folders of other
    setups beyond the newest few, or unused for two weeks, are removed.

    With `BATON_CHECKPOINTS_URI` set, the folder is mirrored to the same relative key under it
    after every checkpoint, and restored from there first when the local copy is missing or older.
    """
    with ExitStack() as held:
        try:
            names = [check_name(part, "checkpoint folder") for part in parts]
            key = [*names, config_key(cfg, input_versions(context, home))]
            folder = inside(home.home.checkpoints, *key)
            held.enter_context(locked_folder(folder))
        except (CheckpointInUse, UnsafeName) as exc:
            raise dg.Failure(str(exc), allow_retries=False) from exc
        if remote := home.home.checkpoints_uri:
            remote = "/".join([remote.rstrip("/"), *key])
            if pull_dir(remote, str(folder), RESUME_POINT):
                context.log.info(f"restored checkpoint folder from {remote}")
        keep_only(folder)
        prune_folders(folder.parent, folder.name, KEEP_OTHER_CONFIGS, MAX_CHECKPOINT_AGE_S)
        if remote:
            held.enter_context(mirrored(str(folder), remote, RESUME_POINT))
        yield str(folder)
        keep_only(folder)


def log_step(metrics: dict[str, float], step: int) -> None:
    """Every 10th training step and every evaluation: per-step writes would dominate a CPU run."""
    if step % 10 == 0 or "val_loss" in metrics:
        mlflow.log_metrics(metrics, step=step)


def register_model(tracking: MlflowResource, run: mlflow.ActiveRun, model_dir: str, name: str, tags: dict[str, str]) -> str:
    """Log the saved model folder as the run's `model` artifact and register it as `<name>@candidate`."""
    mlflow.log_artifacts(model_dir, "model")
    return tracking.register(name, run.info.run_id, "model", tags=tags)


def training_metadata(name: str, version: str, result: FitResult, run_url: dg.UrlMetadataValue) -> dict:
    return {
        "registered_model": name,
        "version": version,
        "best_val_loss": result.best_metric,
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "resumed_from": result.resumed_from if result.resumed_from is not None else -1,
        "mlflow_run": run_url,
    }
