"""Dagster wiring of the score datasets: config, partitions, metadata and checks only."""

import os
import sys

import dagster as dg
import mlflow
import pandas as pd
from tqdm import tqdm

from assets.core import incoming
from assets.core.dataset_shards import parse_key
from assets.core.metadata import manifest_metadata, png_markdown, preview
from assets.core.partitions import DATASETS
from assets.core.plots import save_pngs
from assets.core.rejects import reject_rate, rejects_table
from assets.core.resources import HomeResource, QualityGates
from assets.core.versions import code_version
from assets.scores import checks, ingest, stats, tables
from assets.scores.datasets import download, get_info, shard_items
from assets.scores.datasets.local import incoming_folder
from storage import shards
from storage.tracking import MlflowResource

GROUP = "scores"


class ScoreFilesConfig(dg.Config):
    download: bool = False  # fetch a remote dataset first (otherwise it must have been downloaded)
    claim: list[incoming.ClaimedFile] = []  # incoming files to move into the batch first (the sensor's claim)


@dg.asset(partitions_def=DATASETS, group_name=GROUP, io_manager_key="shard_io")
def score_files(context: dg.AssetExecutionContext, config: ScoreFilesConfig, home: HomeResource) -> pd.DataFrame:
    """The score files of one dataset (a music21-corpus collection, a downloaded or a local folder),
    or of one shard of it: the files whose id hashes to the partition's shard."""
    key, paths = context.partition_key, home.home
    name, shard, n = parse_key(key)
    drops = os.path.join(paths.incoming, "scores")
    refused = incoming.claim_step(context, config.claim, drops, incoming_folder(name, paths.raw)) if config.claim else []
    if config.download and get_info(name, paths.local_datasets).kind == "remote":
        download(name, paths.raw, progress=sys.stderr.isatty())
    frame = ingest.items_frame(shard_items(key, paths.raw, paths.local_datasets))
    context.add_output_metadata(
        {"items": len(frame), "formats": dg.MetadataValue.json(frame["format"].value_counts().to_dict())}
        | ({"dataset": name, "shard": f"{shard} of {n}"} if n > 1 else {})
        | ({"claim_rejects": preview(rejects_table(refused))} if refused else {})
    )
    return frame


class IngestConfig(dg.Config):
    resolution: int = 24
    max_file_mb: float = 50.0
    max_notes_per_file: int = 2_000_000  # a file with more notes is a reject, so none can exhaust memory
    parse_timeout_s: float = 120.0  # a parser running longer on one file is killed; the file is a reject
    parse_memory_mb: float = 4096.0  # likewise a parser whose memory grows by more on one file
    workers: int = 0
    rows_per_shard: int = 250_000


INGEST_CHECKS = [
    dg.AssetCheckSpec("notes_schema", asset="notes", blocking=True, description="Shards carry the note schema."),
    dg.AssetCheckSpec("notes_shards_intact", asset="notes", blocking=True, description="No empty or corrupt shard."),
    dg.AssetCheckSpec("notes_reject_rate", asset="notes", blocking=True, description="Rejects under the threshold."),
]


@dg.multi_asset(
    specs=[
        dg.AssetSpec("songs", deps=["score_files"], group_name=GROUP),
        dg.AssetSpec("notes", deps=["score_files"], group_name=GROUP),
        dg.AssetSpec("notes_rejects", deps=["score_files"], group_name=GROUP),
    ],
    check_specs=INGEST_CHECKS,
    partitions_def=DATASETS,
    ins={"score_files": dg.AssetIn("score_files")},
)
def ingest_scores(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    home: HomeResource,
    quality: QualityGates,
    score_files: pd.DataFrame,
):
    """Parse every score once; songs, notes and rejects come out of the same pass."""
    items = ingest.frame_items(score_files)
    root, partition, version = home.home.datasets, context.partition_key, code_version(context)
    bar = tqdm(total=len(items), desc=f"ingest {partition}", unit="file", disable=None)
    limits = ingest.Limits(
        resolution=config.resolution, max_bytes=int(config.max_file_mb * 1e6),
        max_notes=config.max_notes_per_file, timeout_s=config.parse_timeout_s, max_memory_mb=config.parse_memory_mb,
    )  # fmt: skip
    results = ingest.parse_all(items, workers=config.workers or None, limits=limits, on_result=bar.update)
    with shards.ShardWriter(root, "notes", partition, tables.NOTES, rows_per_shard=config.rows_per_shard, code_version=version) as writer:
        songs, rejects = ingest.write_parsed(results, writer)
    bar.close()
    notes_manifest = writer.manifest
    songs_manifest = shards.write_table(root, "songs", partition, ingest.songs_table(songs), code_version=version)
    rejected = rejects_table(rejects)
    rejects_manifest = shards.write_table(root, "notes_rejects", partition, rejected, code_version=version)
    rate = reject_rate(len(rejects), len(items))
    context.log.info(f"{len(songs)} songs, {notes_manifest.rows} notes, {len(rejects)} rejects")

    yield dg.MaterializeResult(
        asset_key="songs",
        metadata={**manifest_metadata(songs_manifest), "preview": preview(ingest.songs_table(songs[:10]))},
    )
    yield dg.MaterializeResult(asset_key="notes", metadata=manifest_metadata(notes_manifest))
    yield dg.MaterializeResult(
        asset_key="notes_rejects",
        metadata={
            **manifest_metadata(rejects_manifest),
            "reject_rate": rate,
            "by_error": dg.MetadataValue.json(rejected.to_pandas()["error_type"].value_counts().to_dict()),
            "preview": preview(rejected),
        },
    )
    yield dg.AssetCheckResult(
        check_name="notes_schema",
        asset_key="notes",
        passed=notes_manifest.schema == tables.NOTES.to_string(),
        metadata={"schema": notes_manifest.schema},
    )
    problems = checks.shard_problems(root, "notes", partition, notes_manifest)
    yield dg.AssetCheckResult(
        check_name="notes_shards_intact",
        asset_key="notes",
        passed=not problems,
        metadata={"problems": dg.MetadataValue.json(problems), "rows": notes_manifest.rows},
    )
    yield dg.AssetCheckResult(
        check_name="notes_reject_rate",
        asset_key="notes",
        passed=rate <= quality.max_reject_rate,
        metadata={"reject_rate": rate, "threshold": quality.max_reject_rate, "rejects": len(rejects)},
    )


@dg.asset(partitions_def=DATASETS, deps=["songs"], group_name=GROUP)
def dataset_stats(context: dg.AssetExecutionContext, home: HomeResource, tracking: MlflowResource) -> dg.MaterializeResult:
    """Song length, initial tempo and key histograms (MusPy §2.4), in the UI and in MLflow."""
    partition = context.partition_key
    songs = shards.read_table(home.home.datasets, "songs", [partition]).to_pandas()
    figures = stats.histograms(songs, partition)
    out_dir = str(save_pngs(figures, os.path.join(home.home.cache, "plots", "dataset_stats", partition)))
    summary = stats.summary(songs)
    with tracking.run(context, run_name=f"dataset_stats-{partition}") as run:
        mlflow.log_metrics(summary)
        mlflow.log_artifacts(out_dir, "plots")
    return dg.MaterializeResult(
        metadata={
            **summary,
            "plots": dg.MetadataValue.md("\n\n".join(png_markdown(n, p) for n, p in figures.items())),
            "plot_dir": dg.MetadataValue.path(out_dir),
            "mlflow_run": tracking.run_url(run),
        }
    )


assets = [score_files, ingest_scores, dataset_stats]
