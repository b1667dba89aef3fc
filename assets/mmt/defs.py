"""Dagster wiring of the Multitrack Music Transformer branch: codes, model, samples, evaluation."""


import os
import sys
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa

from assets.core.dataset_shards import all_keys, datasets_of, parse_key
from assets.core.distributed import train_distributed
from assets.core.metadata import manifest_metadata, markdown_table, png_markdown, preview
from assets.core.partitions import DATASETS
from assets.core.rejects import rejects_table
from assets.core.resources import HomeResource
from assets.core.selection import NotMaterialized, pick_datasets
from assets.core.tools import soundfont_path
from assets.core.training import (
    checkpoint_dir,
    log_step,
    profile_config,
    register_model,
    training_metadata,
)
from assets.core.versions import code_version
from assets.mmt import codes as mmt_data
from assets.mmt import evaluation
from assets.mmt import sampling as mmt_sampling
from assets.scores.songs import assign_splits
from models import mmt
from models.training import default_device
from storage import shards
from storage.tracking import MlflowResource

GROUP = "mmt"
REGISTERED = "mmt"


class CodesConfig(dg.Config):
    """``profile`` picks the data preparation: `paper` drops songs as the published code does, `smoke` keeps all."""

    profile: str = "paper"
    split_seed: int = 0
    rows_per_shard: int = 5_000


@dg.multi_asset(
    specs=[
        dg.AssetSpec("mmt_codes", deps=["notes"], group_name=GROUP),
        dg.AssetSpec("mmt_codes_rejects", deps=["notes"], group_name=GROUP),
    ],
    partitions_def=DATASETS,
)
def mmt_codes(context: dg.AssetExecutionContext, config: CodesConfig, home: HomeResource):
    """MMT's six-field event codes of every whole song (12 steps per quarter), 8:1:1 split; training
    draws its windows from them."""
    if config.profile not in mmt.PREPARATIONS:
        raise dg.Failure(f"unknown profile {config.profile!r}: use one of {sorted(mmt.PREPARATIONS)}")
    root, partition, version = home.home.datasets, context.partition_key, code_version(context)
    song_ids = shards.read_table(root, "songs", [partition], columns=["song"]).column("song").to_pylist()
    splits = assign_splits(song_ids, seed=config.split_seed)
    rows = mmt_data.encode_songs(
        parse_key(partition)[0], shards.iter_batches(root, "notes", [partition]), splits, mmt.PREPARATIONS[config.profile]
    )
    with shards.ShardWriter(
        root, mmt_data.ASSET, partition, mmt_data.CODES, rows_per_shard=config.rows_per_shard,
        code_version=version, upstream={"notes": shards.read_manifest(root, "notes", partition).version},
    ) as writer:
        rejects, beats = mmt_data.write_encoded(rows, writer)
    rejected = rejects_table(rejects)
    rejects_manifest = shards.write_table(root, "mmt_codes_rejects", partition, rejected, code_version=version)
    if rejects:
        context.log.warning(f"{len(rejects)} songs left out, e.g. {rejects[0].item}: {rejects[0].message}")
    yield dg.MaterializeResult(
        asset_key="mmt_codes", metadata={**manifest_metadata(writer.manifest), **mmt_data.length_stats(beats, mmt.MMTConfig().max_beat)}
    )
    yield dg.MaterializeResult(
        asset_key="mmt_codes_rejects",
        metadata={**manifest_metadata(rejects_manifest), "preview": preview(rejected)},
    )


class MMTTrainConfig(dg.Config):
    """The published hyperparameters are the `paper` profile of models.mmt; `smoke` is tiny."""

    profile: str = "smoke"
    datasets: list[str] = []  # default: the multi-part collections that have codes
    max_steps: int = 0  # 0: the profile's
    seed: int = 0
    nproc: int = 1  # training processes under torchrun (one per GPU); 1 trains in this process


def training_sets(home: HomeResource, requested: list[str]) -> list[str]:
    """The partitions (every shard) of the datasets picked by name among those with complete codes."""
    available = shards.list_partitions(home.home.datasets, mmt_data.ASSET)
    datasets = datasets_of(available)
    try:
        return all_keys(pick_datasets(mmt_data.ASSET, requested, datasets, mmt_data.DEFAULT_DATASETS, datasets), available)
    except NotMaterialized as exc:
        raise dg.Failure(str(exc)) from exc


@dg.asset(
    deps=[dg.AssetDep("mmt_codes", partition_mapping=dg.AllPartitionMapping())],
    group_name=GROUP,
    retry_policy=dg.RetryPolicy(max_retries=2),
)
def mmt_model(
    context: dg.AssetExecutionContext, config: MMTTrainConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """The Multitrack Music Transformer, trained with resume and registered as mmt@candidate."""
    cfg = profile_config(mmt.PROFILES, config.profile, config.seed, config.max_steps)
    root = home.home.datasets
    datasets = training_sets(home, config.datasets)
    _, train_seqs = mmt_data.read_sequences(root, datasets, "train")
    _, valid_seqs = mmt_data.read_sequences(root, datasets, "valid")
    if not train_seqs or not valid_seqs:
        raise dg.Failure(f"{datasets} have {len(train_seqs)} training and {len(valid_seqs)} validation songs; need both")
    with checkpoint_dir(context, home, cfg, "mmt") as ckpt_dir, tracking.run(context, run_name="mmt") as run:
        mlflow.log_params({**asdict(cfg), "profile": config.profile, "datasets": ",".join(datasets)})
        if config.nproc > 1:
            result, model_dir = train_distributed("mmt", cfg, train_seqs, valid_seqs, ckpt_dir, config.nproc, log_step)
        else:
            model, result = mmt.train(cfg, train_seqs, valid_seqs, ckpt_dir, log_step, progress=sys.stderr.isatty())
            model_dir = os.path.join(ckpt_dir, "model")
            mmt.save_model(model, cfg, model_dir)
        mlflow.log_metrics({"best_val_loss": result.best_metric, "steps": result.steps})
        version = register_model(tracking, run, model_dir, REGISTERED, {"datasets": ",".join(datasets), "profile": config.profile})
    return dg.MaterializeResult(
        metadata={**training_metadata(REGISTERED, version, result, tracking.run_url(run)), "train_songs": len(train_seqs)}
    )


class SamplesConfig(dg.Config):
    alias: str = "candidate"
    per_mode: int = 4
    continuation_beats: int = 4
    max_len: int = 1024
    seed: int = 0
    datasets: list[str] = []



@dg.asset(deps=["mmt_model"], group_name=GROUP, io_manager_key="shard_io")
def mmt_samples(
    context: dg.AssetExecutionContext, config: SamplesConfig, home: HomeResource, tracking: MlflowResource
) -> pa.Table:
    """Unconditioned, instrument-informed and n-beat continuation samples: MIDI, audio and piano rolls."""
    version = tracking.get_alias_version(REGISTERED, config.alias)
    if version is None:
        raise dg.Failure(f"no registered model {REGISTERED}@{config.alias}: materialize mmt_model first")
    model, _ = mmt.load_model(tracking.fetch(version, home.home.cache), default_device())
    datasets = training_sets(home, config.datasets)
    test_songs, test_codes = mmt_data.read_sequences(home.home.datasets, datasets, "test")
    test_codes = [mmt.window(codes, model.cfg.max_beat, model.cfg.max_seq_len) for codes in test_codes]
    samples = mmt_sampling.generate_samples(
        model, test_songs, test_codes, mmt_sampling.MODES, config.per_mode, config.continuation_beats, config.max_len, config.seed
    )
    out_dir = os.path.join(home.home.cache, "mmt_samples", context.run_id)
    table = mmt_sampling.samples_table(samples, Path(out_dir), soundfont_path(), str(version.version))
    with tracking.run(context, run_name="mmt_samples") as run:
        mlflow.log_artifacts(out_dir, "samples")
        mlflow.log_metrics({"generated_notes_per_second": float(np.mean(table.column("notes_per_second").to_numpy()))})
    context.add_output_metadata(
        {
            "model_version": str(version.version),
            "samples": table.num_rows,
            "rendered": sum(bool(a) for a in table.column("audio").to_pylist()),
            "piano_rolls": dg.MetadataValue.md("\n\n".join(png_markdown(n, png) for n, png in mmt_sampling.piano_rolls(table))),
            "preview": preview(table.drop_columns(["codes"])),
            "sample_dir": dg.MetadataValue.path(out_dir),
            "mlflow_run": tracking.run_url(run),
        }
    )
    return table


class EvalConfig(dg.Config):
    n_beats: int = 64
    datasets: list[str] = []


@dg.asset(group_name=GROUP, io_manager_key="shard_io")
def mmt_eval(
    context: dg.AssetExecutionContext, config: EvalConfig, home: HomeResource, tracking: MlflowResource, mmt_samples: pa.Table
) -> pd.DataFrame:
    """Pitch-class entropy, scale and groove consistency against the test songs, test loss and speed;
    promotes the candidate to mmt@champion when its test loss beats the champion's."""
    version_id = mmt_samples.column("model_version")[0].as_py()
    version = tracking.get_version(REGISTERED, version_id)
    model, cfg = mmt.load_model(tracking.fetch(version, home.home.cache), default_device())
    datasets = training_sets(home, config.datasets)
    _, test_codes = mmt_data.read_sequences(home.home.datasets, datasets, "test")
    test_loss = evaluation.test_loss(model, cfg, test_codes)
    first_windows = [mmt.window(codes, cfg.max_beat, cfg.max_seq_len) for codes in test_codes]
    table = evaluation.mode_table(mmt_samples, first_windows, config.n_beats)
    with tracking.run(context, run_name="mmt_eval") as run:
        mlflow.log_metrics(evaluation.eval_metrics(table, test_loss, mmt_samples))
        mlflow.log_text(table.to_csv(index=False), "mmt_eval.csv")
        tracking.log_version_metrics(version, {"test_loss": test_loss})
        promoted = tracking.promote_if_better(REGISTERED, version, "test_loss", lower_is_better=True)
    context.add_output_metadata(
        {
            "model_version": version_id,
            "test_loss": test_loss,
            "promoted_to_champion": promoted,
            "metrics": dg.MetadataValue.md(markdown_table(table.round(3))),
            "mlflow_run": tracking.run_url(run),
        }
    )
    return table


assets = [mmt_codes, mmt_model, mmt_samples, mmt_eval]
