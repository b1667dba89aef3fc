"""Dagster wiring of automatic instrumentation: part notes, models per architecture, evaluation, arrangements."""


import os
import sys
from dataclasses import asdict, replace
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd
import pyarrow.compute as pc

from assets.core import plots
from assets.core.dataset_shards import all_keys, datasets_of, parse_key
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
from assets.instrumentation import arrangements, evaluation, part_notes
from assets.instrumentation.arrange import Arranger, model_arranger, zone_arranger
from assets.scores.songs import assign_splits
from models import part_separation as ps
from models.training import default_device
from storage import shards
from storage.tracking import BASELINE_ARTIFACT, MlflowResource, baseline_notice, baseline_record, baseline_text, unbeaten

GROUP = "instrumentation"
REGISTERED = "part_separation"
ARCHS = dg.StaticPartitionsDefinition(list(ps.ARCHS))
DEFAULT_DATASETS = ["bach_chorales"]


class PartNotesConfig(dg.Config):
    scheme: str = ""  # empty: the dataset's default (satb, string_quartet, else lmd)
    split_seed: int = 0


@dg.multi_asset(
    specs=[
        dg.AssetSpec("part_notes", deps=["notes"], group_name=GROUP),
        dg.AssetSpec("part_notes_rejects", deps=["notes"], group_name=GROUP),
    ],
    partitions_def=DATASETS,
    name="part_notes",
)
def part_notes_asset(context: dg.AssetExecutionContext, config: PartNotesConfig, home: HomeResource):
    """Part-labelled downmixes at 24 steps per quarter (one row per song), 8:1:1 split by song."""
    root, partition, version = home.home.datasets, context.partition_key, code_version(context)
    dataset = parse_key(partition)[0]
    try:
        scheme = part_notes.scheme_for(config.scheme, dataset)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    song_ids = shards.read_table(root, "songs", [partition], columns=["song"]).column("song").to_pylist()
    splits = assign_splits(song_ids, seed=config.split_seed)
    songs, rejects = part_notes.extract_rejecting(dataset, shards.iter_batches(root, "notes", [partition]), scheme, splits)
    manifest = shards.write_table(
        root, "part_notes", partition, part_notes.to_table(songs), code_version=version,
        upstream={"notes": shards.read_manifest(root, "notes", partition).version},
    )
    rejected = rejects_table(rejects)
    rejects_manifest = shards.write_table(root, "part_notes_rejects", partition, rejected, code_version=version)
    yield dg.MaterializeResult(
        asset_key="part_notes",
        metadata={
            **manifest_metadata(manifest),
            "scheme": scheme.name,
            "notes_per_part": dg.MetadataValue.json(part_notes.notes_per_part(songs, scheme)),
            "splits": dg.MetadataValue.json(part_notes.songs_per_split(songs)),
        },
    )
    yield dg.MaterializeResult(
        asset_key="part_notes_rejects", metadata={**manifest_metadata(rejects_manifest), "preview": preview(rejected)}
    )


def read_songs(home: HomeResource, datasets: list[str], split: str) -> list[part_notes.PartSong]:
    table = shards.read_table(home.home.datasets, "part_notes", datasets, filter=pc.field("split") == split)
    return part_notes.from_table(table)


def part_datasets(home: HomeResource, requested: list[str]) -> list[str]:
    """The partitions (every shard) of the datasets picked by name among those with complete part notes."""
    available = shards.list_partitions(home.home.datasets, "part_notes")
    datasets = datasets_of(available)
    try:
        return all_keys(pick_datasets("part_notes", requested, datasets, DEFAULT_DATASETS, datasets[:1]), available)
    except NotMaterialized as exc:
        raise dg.Failure(str(exc)) from exc


class PartSepTrainConfig(dg.Config):
    """The paper's settings are the `paper` profile of models.part_separation; `smoke` is tiny."""

    profile: str = "smoke"
    datasets: list[str] = []  # default: bach_chorales when it has part notes
    max_steps: int = 0  # 0: the profile's
    seed: int = 0


@dg.asset(
    partitions_def=ARCHS,
    deps=[dg.AssetDep("part_notes", partition_mapping=dg.AllPartitionMapping())],
    group_name=GROUP,
    retry_policy=dg.RetryPolicy(max_retries=2),
)
def part_separation_model(
    context: dg.AssetExecutionContext, config: PartSepTrainConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """One part-separation architecture, trained with resume and registered as part_separation@candidate."""
    arch = context.partition_key
    datasets = part_datasets(home, config.datasets)
    train_songs, valid_songs = read_songs(home, datasets, "train"), read_songs(home, datasets, "valid")
    if not train_songs or not valid_songs:
        raise dg.Failure(f"{datasets} have {len(train_songs)} training and {len(valid_songs)} validation songs; need both")
    cfg = ps.configure(replace(profile_config(ps.PROFILES, config.profile, config.seed, config.max_steps), arch=arch), train_songs)
    with checkpoint_dir(context, home, cfg, "part_separation", arch) as ckpt_dir, tracking.run(
        context, run_name=f"part_separation-{arch}"
    ) as run:
        model, result = ps.train(cfg, train_songs, valid_songs, ckpt_dir, log_step, progress=sys.stderr.isatty())
        mlflow.log_params({**asdict(cfg), "profile": config.profile, "datasets": ",".join(datasets)})
        model_dir = os.path.join(ckpt_dir, "model")
        ps.save_model(model, cfg, model_dir)
        tags = {
            "arch": arch, "datasets": ",".join(datasets), "scheme": train_songs[0].scheme,
            "part_names": ",".join(train_songs[0].part_names), "profile": config.profile,
        }
        version = register_model(tracking, run, model_dir, REGISTERED, tags)
    return dg.MaterializeResult(metadata=training_metadata(REGISTERED, version, result, tracking.run_url(run)))



class PartSepEvalConfig(dg.Config):
    datasets: list[str] = []


@dg.asset(
    deps=[dg.AssetDep("part_separation_model", partition_mapping=dg.AllPartitionMapping())],
    group_name=GROUP,
    io_manager_key="shard_io",
)
def part_separation_eval(
    context: dg.AssetExecutionContext, config: PartSepEvalConfig, home: HomeResource, tracking: MlflowResource
) -> pd.DataFrame:
    """Per-note accuracy on the test songs (the paper's Table 4.2): baselines and the newest model of
    each architecture, with and without entry hints; the best without hints becomes the champion,
    because that is how `baton instrument` runs them, when it beats the zone-based and closest-pitch
    baselines. The run logs the zone baseline, which arranges in place of a champion that none earned."""
    datasets = part_datasets(home, config.datasets)
    train_songs, test_songs = read_songs(home, datasets, "train"), read_songs(home, datasets, "test")
    if not test_songs:
        raise dg.Failure(f"{datasets} have no test songs")
    versions = {
        arch: v for arch, v in tracking.newest_by_tag(REGISTERED, "arch").items() if v.tags.get("datasets") == ",".join(datasets)
    }
    if not versions:
        raise dg.Failure(f"no {REGISTERED} version trained on {datasets}: materialize part_separation_model first")
    part_names = test_songs[0].part_names
    baselines = evaluation.baseline_rows(train_songs, test_songs, len(part_names))
    results = {
        arch: evaluation.evaluate_arch(
            arch, *ps.load_model(tracking.fetch(version, home.home.cache), default_device()), test_songs, len(part_names)
        )
        for arch, version in versions.items()
    }
    for arch, result in results.items():
        tracking.log_version_metrics(versions[arch], result.scores)
    table = evaluation.results_table(baselines + [row for result in results.values() for row in result.rows])
    ranked = evaluation.ranked(results)
    png = evaluation.confusion_png(results[ranked[0]].confusion, part_names, ranked[0])
    rule, metric = evaluation.champion_baselines(baselines), "test_accuracy_no_hints"
    record = baseline_record(
        metric, False, rule, f"{ranked[0]} v{versions[ranked[0]].version}", results[ranked[0]].scores[metric],
        **evaluation.zone_baseline(train_songs, part_names, test_songs[0].scheme),
    )  # fmt: skip
    with tracking.run(context, run_name="part_separation_eval") as run:
        mlflow.log_metrics(evaluation.run_metrics(baselines, results))
        mlflow.log_text(table.to_csv(index=False), "table_4_2.csv")
        mlflow.log_image(plots.png_image(png), f"confusion_{ranked[0]}.png")
        mlflow.log_dict(record, BASELINE_ARTIFACT)
        promoted = [a for a in ranked if tracking.promote_if_better(REGISTERED, versions[a], metric, False, rule)]
    below = {a: baseline_text(unbeaten(results[a].scores[metric], rule, False)) for a in ranked}
    champion = tracking.get_alias_version(REGISTERED, "champion")
    context.add_output_metadata(
        {
            "table": dg.MetadataValue.md(markdown_table(table)),
            "confusion_matrix": dg.MetadataValue.md(png_markdown("confusion matrix", png)),
            "champion_version": str(champion.version) if champion is not None else "",
            "promoted": dg.MetadataValue.json(promoted),
            "champion_baselines": dg.MetadataValue.json(rule),
            "below_baseline": dg.MetadataValue.json({arch: text for arch, text in below.items() if text}),
            "mlflow_run": tracking.run_url(run),
        }
    )
    return table


class InstrumentationConfig(dg.Config):
    inputs: list[str] = []  # score files (MIDI, MusicXML, ...); empty: downmixes of the first test songs
    examples: int = 3
    alias: str = "champion"
    datasets: list[str] = []


def arranger(home: HomeResource, tracking: MlflowResource, alias: str) -> Arranger:
    """`part_separation@alias`, or the zone baseline when no model earned the champion alias."""
    record = tracking.baseline_in_place(REGISTERED, alias, "part_separation_eval")
    if record is not None:
        return replace(zone_arranger(record), name=f"the zone baseline: {baseline_notice(REGISTERED, record, evaluation.percent)}")
    version = tracking.get_alias_version(REGISTERED, alias)
    if version is None:
        raise dg.Failure(
            f"no registered model {REGISTERED}@{alias}: materialize part_separation_model and part_separation_eval first"
        )
    model, cfg = ps.load_model(tracking.fetch(version, home.home.cache), default_device())
    part_names, scheme = version.tags.get("part_names", "").split(","), version.tags.get("scheme", "")
    return model_arranger(model, cfg, part_names, scheme, f"{REGISTERED} v{version.version} ({version.tags.get('arch')})")


@dg.asset(name="instrumentation", deps=["part_separation_eval"], group_name=GROUP, io_manager_key="shard_io")
def instrumentation_asset(
    context: dg.AssetExecutionContext, config: InstrumentationConfig, home: HomeResource, tracking: MlflowResource
) -> pd.DataFrame:
    """Solo scores arranged by the champion (or by the zone baseline when no model beats it): MIDI, audio
    and piano rolls, in the UI and in MLflow."""
    by = arranger(home, tracking, config.alias)
    if config.inputs:
        inputs = arrangements.read_inputs(config.inputs)
    else:
        inputs = arrangements.example_inputs(read_songs(home, part_datasets(home, config.datasets), "test"), config.examples)
    out_dir = Path(home.home.cache) / "instrumentation" / context.run_id
    frame, rolls = arrangements.write_arrangements(inputs, by, out_dir, soundfont_path())
    with tracking.run(context, run_name="instrumentation") as run:
        mlflow.log_artifacts(str(out_dir), "arrangements")
    context.add_output_metadata(
        {
            "arranged_by": by.name,
            "piano_rolls": dg.MetadataValue.md("\n\n".join(png_markdown(name, png) for name, png in rolls)),
            "results": dg.MetadataValue.md(markdown_table(frame)),
            "mlflow_run": tracking.run_url(run),
        }
    )
    return frame


assets = [part_notes_asset, part_separation_model, part_separation_eval, instrumentation_asset]
