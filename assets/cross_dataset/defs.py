"""Dagster wiring of the MusPy cross-dataset experiment: config, partitions, metadata and checks only."""

import os
import sys
from dataclasses import asdict

import dagster as dg
import mlflow
import pandas as pd
import torch

from assets.core import plots
from assets.core.dataset_shards import complete, datasets_of, parse_key
from assets.core.metadata import manifest_metadata, markdown_table, png_markdown
from assets.core.partitions import DATASETS
from assets.core.resources import HomeResource
from assets.core.training import checkpoint_dir, log_step, profile_config, register_model, training_metadata
from assets.core.versions import code_version
from assets.cross_dataset import events, language_model
from assets.scores import tables
from assets.scores.songs import assign_splits, iter_songs
from models import music_lm as lm
from storage import shards
from storage.tracking import MlflowResource

COMBINED = dg.StaticPartitionsDefinition(list(language_model.COMBINED_MODES))
GROUP = "cross_dataset"


class EventConfig(dg.Config):
    split_seed: int = 0
    rows_per_shard: int = 20_000


@dg.asset(partitions_def=DATASETS, deps=["notes"], group_name=GROUP)
def event_sequences(context: dg.AssetExecutionContext, config: EventConfig, home: HomeResource) -> dg.MaterializeResult:
    """MusPy event representation (4 steps per quarter, no velocity, end-of-sequence) with 8:1:1 splits."""
    root, partition = home.home.datasets, context.partition_key
    song_ids = shards.read_table(root, "songs", [partition], columns=["song"]).column("song").to_pylist()
    splits = assign_splits(song_ids, seed=config.split_seed)
    with shards.ShardWriter(
        root, "event_sequences", partition, tables.EVENTS, rows_per_shard=config.rows_per_shard,
        code_version=code_version(context), upstream={"notes": shards.read_manifest(root, "notes", partition).version},
    ) as writer:
        lengths = events.write_sequences(parse_key(partition)[0], iter_songs(shards.iter_batches(root, "notes", [partition])), splits, writer)
    summary = events.summary(lengths, splits)
    return dg.MaterializeResult(
        metadata={
            **manifest_metadata(writer.manifest),
            "vocab_size": events.VOCAB_SIZE,
            "mean_events": summary["mean_events"],
            "splits": dg.MetadataValue.json(summary["splits"]),
        }
    )


class MusicLMConfig(dg.Config):
    """The MusPy §2.5 hyperparameters are the `paper` profile of models.music_lm; `smoke` is tiny."""

    profile: str = "smoke"
    arch: str = "lstm"  # rnn, lstm, gru or transformer
    max_steps: int = 0  # 0: the profile's
    seed: int = 0
    datasets: list[str] = []  # music_lm_combined only; default: every dataset with event sequences


def registry_name(training_set: str) -> str:
    return f"music_lm-{training_set}"


def train_and_register(
    context: dg.AssetExecutionContext,
    config: MusicLMConfig,
    home: HomeResource,
    tracking: MlflowResource,
    training_set: str,
    datasets: list[str],
    stratified: bool,
) -> dg.MaterializeResult:
    """Shared by per-dataset and combined models: train with resume, log, register as `candidate`."""
    try:
        cfg = language_model.model_config(profile_config(lm.PROFILES, config.profile, config.seed, config.max_steps), config.arch)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    root = home.home.datasets
    available = shards.list_partitions(root, "event_sequences")
    missing = [d for d in datasets if not complete(d, available)]
    if missing:
        raise dg.Failure(f"event_sequences not materialized for {missing}: materialize those partitions first")
    with checkpoint_dir(context, home, cfg, "music_lm", training_set) as ckpt_dir, tracking.run(
        context, run_name=f"music_lm-{training_set}"
    ) as run:
        mlflow.log_params({**asdict(cfg), "profile": config.profile, "datasets": ",".join(datasets), "stratified": stratified})
        model, result = language_model.train_on(
            root, datasets, cfg, ckpt_dir, log_step, stratified, progress=sys.stderr.isatty()
        )
        test_ppl = language_model.perplexity_on_tests(root, model, datasets, cfg.seq_len, next(model.parameters()).device)
        mlflow.log_metrics({"test_perplexity": test_ppl, "steps": result.steps, "best_step": result.best_step})
        model_dir = os.path.join(ckpt_dir, "model")
        lm.save_model(model, cfg, model_dir)
        version = register_model(tracking, run, model_dir, registry_name(training_set), {})
    return dg.MaterializeResult(
        metadata={**training_metadata(registry_name(training_set), version, result, tracking.run_url(run)), "test_perplexity": test_ppl}
    )


@dg.asset(
    partitions_def=DATASETS,
    deps=["event_sequences"],
    group_name=GROUP,
    retry_policy=dg.RetryPolicy(max_retries=2),
)
def music_lm(
    context: dg.AssetExecutionContext, config: MusicLMConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """A language model over one dataset's event sequences, registered as music_lm-<dataset>@candidate;
    any shard of a sharded dataset trains it on every shard."""
    dataset = parse_key(context.partition_key)[0]
    return train_and_register(context, config, home, tracking, dataset, [dataset], False)


def combined_datasets(config: MusicLMConfig, home: HomeResource) -> list[str]:
    """The datasets asked for, else every dataset whose event sequences exist for all of its shards."""
    return config.datasets or datasets_of(shards.list_partitions(home.home.datasets, "event_sequences"))


@dg.asset(
    partitions_def=COMBINED,
    deps=[dg.AssetDep("event_sequences", partition_mapping=dg.AllPartitionMapping())],
    group_name=GROUP,
    retry_policy=dg.RetryPolicy(max_retries=2),
)
def music_lm_combined(
    context: dg.AssetExecutionContext, config: MusicLMConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """The paper's "all datasets combined" and "stratified sampling" models."""
    mode = context.partition_key
    datasets = combined_datasets(config, home)
    return train_and_register(context, config, home, tracking, mode, datasets, mode == "stratified")


class PerplexityConfig(dg.Config):
    datasets: list[str] = []
    alias: str = "candidate"


@dg.asset(
    deps=[
        dg.AssetDep("music_lm", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("music_lm_combined", partition_mapping=dg.AllPartitionMapping()),
    ],
    group_name=GROUP,
    io_manager_key="shard_io",
)
def cross_dataset_perplexity(
    context: dg.AssetExecutionContext, config: PerplexityConfig, home: HomeResource, tracking: MlflowResource
) -> pd.DataFrame:
    """Train-by-test perplexity matrix (Figure 2.10); a per-dataset candidate that beats its champion
    in domain is promoted."""
    root = home.home.datasets
    datasets = config.datasets or datasets_of(shards.list_partitions(root, "event_sequences"))
    training_sets = [*datasets, *language_model.COMBINED_MODES]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models, versions = {}, {}
    for name in training_sets:
        version = tracking.get_alias_version(registry_name(name), config.alias)
        if version is None:
            context.log.warning(f"no {registry_name(name)}@{config.alias}; leaving it out of the matrix")
            continue
        models[name] = lm.load_model(tracking.fetch(version, home.home.cache), device)
        versions[name] = version
    if not models:
        raise dg.Failure("no music_lm model is registered yet: materialize music_lm first")
    matrix = language_model.perplexity_matrix(root, models, datasets, device)
    png = language_model.heatmap_png(matrix)
    promoted = []
    with tracking.run(context, run_name="cross_dataset_perplexity") as run:
        mlflow.log_image(plots.png_image(png), "cross_dataset_perplexity.png")
        mlflow.log_text(matrix.to_csv(), "cross_dataset_perplexity.csv")
        for name in datasets:
            if name not in models:
                continue
            mlflow.log_metrics({f"in_domain_perplexity.{name}": float(matrix.loc[name, name])})
            if tracking.promote_if_better(registry_name(name), versions[name], "test_perplexity", lower_is_better=True):
                promoted.append(name)
    context.add_output_metadata(
        {
            "heatmap": dg.MetadataValue.md(png_markdown("cross-dataset perplexity", png)),
            "matrix": dg.MetadataValue.md(markdown_table(matrix.round(2).reset_index())),
            "promoted_to_champion": dg.MetadataValue.json(promoted),
            "mlflow_run": tracking.run_url(run),
        }
    )
    return language_model.long_matrix(matrix)


assets = [event_sequences, music_lm, music_lm_combined, cross_dataset_perplexity]
