"""Dagster wiring of automatic instrumentation: part notes, models per architecture, evaluation, arrangements."""


import os
import re
import sys
from dataclasses import asdict, replace
from pathlib import Path

import dagster as dg
import mlflow
import muspy
import numpy as np
import pandas as pd
import pyarrow.compute as pc
from mlflow.entities.model_registry import ModelVersion

from assets.core.partitions import DATASETS
from assets.core import plots
from assets.core.rejects import Reject, rejects_table
from assets.instrumentation import arrange as instrumentation
from assets.instrumentation import baselines as part_baselines
from assets.instrumentation import part_notes
from assets.scores.songs import assign_splits
from assets.core.synth import RenderError, render_midi
from models import part_separation as ps
from models.training import default_device
from assets.core.metadata import manifest_metadata, markdown_table, png_markdown, preview
from assets.core.resources import HomeResource
from assets.core.tools import soundfont_path
from assets.core.training import (
    checkpoint_dir,
    log_step,
    metric_key,
    profile_config,
    register_model,
    training_metadata,
)
from storage import shards
from storage.tracking import MlflowResource

GROUP = "instrumentation"
CODE_VERSION = "1"
REGISTERED = "part_separation"
ARCHS = dg.StaticPartitionsDefinition(list(ps.ARCHS))
DEFAULT_DATASETS = ["bach_chorales"]


class PartNotesConfig(dg.Config):
    scheme: str = ""  # empty: the dataset's default (satb, string_quartet, else lmd)
    split_seed: int = 0


@dg.multi_asset(
    specs=[
        dg.AssetSpec("part_notes", deps=["notes"], group_name=GROUP, code_version=CODE_VERSION),
        dg.AssetSpec("part_notes_rejects", deps=["notes"], group_name=GROUP, code_version=CODE_VERSION),
    ],
    partitions_def=DATASETS,
    name="part_notes",
)
def part_notes_asset(context: dg.AssetExecutionContext, config: PartNotesConfig, home: HomeResource):
    """Part-labelled downmixes at 24 steps per quarter (one row per song), 8:1:1 split by song."""
    root, partition = home.home.datasets, context.partition_key
    if config.scheme and config.scheme not in part_notes.SCHEMES:
        raise dg.Failure(f"unknown part scheme {config.scheme!r}; choose from {sorted(part_notes.SCHEMES)}")
    scheme = part_notes.SCHEMES[config.scheme] if config.scheme else part_notes.default_scheme(partition)
    song_ids = shards.read_table(root, "songs", [partition], columns=["song"]).column("song").to_pylist()
    splits = assign_splits(song_ids, seed=config.split_seed)
    songs, rejects = [], []
    for result in part_notes.iter_extract(shards.iter_batches(root, "notes", [partition]), lambda _: scheme, splits):
        if isinstance(result, part_notes.Skip):
            rejects.append(Reject(partition, result.song, "part_extract", "Skipped", result.reason))
        else:
            songs.append(result)
    table = part_notes.to_table(songs)
    manifest = shards.write_table(
        root, "part_notes", partition, table, code_version=CODE_VERSION,
        upstream={"notes": shards.read_manifest(root, "notes", partition).version},
    )
    rejected = rejects_table(rejects)
    rejects_manifest = shards.write_table(root, "part_notes_rejects", partition, rejected, code_version=CODE_VERSION)
    counts = np.bincount(np.concatenate([s.label for s in songs]), minlength=len(scheme.labels)) if songs else []
    yield dg.MaterializeResult(
        asset_key="part_notes",
        metadata={
            **manifest_metadata(manifest),
            "scheme": scheme.name,
            "notes_per_part": dg.MetadataValue.json(dict(zip(scheme.labels, map(int, counts)))),
            "splits": dg.MetadataValue.json(pd.Series([s.split for s in songs]).value_counts().to_dict()),
        },
    )
    yield dg.MaterializeResult(
        asset_key="part_notes_rejects", metadata={**manifest_metadata(rejects_manifest), "preview": preview(rejected)}
    )


def read_songs(home: HomeResource, datasets: list[str], split: str) -> list[part_notes.PartSong]:
    table = shards.read_table(home.home.datasets, "part_notes", datasets, filter=pc.field("split") == split)
    return part_notes.from_table(table)


def part_datasets(home: HomeResource, requested: list[str]) -> list[str]:
    available = shards.list_partitions(home.home.datasets, "part_notes")
    datasets = requested or [d for d in DEFAULT_DATASETS if d in available] or available[:1]
    missing = [d for d in datasets if d not in available]
    if missing or not datasets:
        raise dg.Failure(f"part_notes not materialized for {missing or 'any dataset'}: materialize those partitions first")
    return datasets


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
    code_version=CODE_VERSION,
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
    ckpt_dir = checkpoint_dir(context, home, "part_separation", arch)
    with tracking.run(context, run_name=f"part_separation-{arch}") as run:
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


def load_version(home: HomeResource, tracking: MlflowResource, version: ModelVersion):
    return ps.load_model(tracking.fetch(version, home.home.cache), default_device())


class PartSepEvalConfig(dg.Config):
    datasets: list[str] = []


@dg.asset(
    deps=[dg.AssetDep("part_separation_model", partition_mapping=dg.AllPartitionMapping())],
    group_name=GROUP,
    io_manager_key="shard_io",
    code_version=CODE_VERSION,
)
def part_separation_eval(
    context: dg.AssetExecutionContext, config: PartSepEvalConfig, home: HomeResource, tracking: MlflowResource
) -> pd.DataFrame:
    """Per-note accuracy on the test songs (the paper's Table 4.2): baselines and the newest model of
    each architecture, with and without entry hints; the best without hints becomes the champion,
    because that is how `baton instrument` runs them."""
    datasets = part_datasets(home, config.datasets)
    train_songs, test_songs = read_songs(home, datasets, "train"), read_songs(home, datasets, "test")
    if not test_songs:
        raise dg.Failure(f"{datasets} have no test songs")
    part_names = test_songs[0].part_names
    rows = instrumentation.baseline_rows(train_songs, test_songs, len(part_names))
    versions = {
        arch: v for arch, v in tracking.newest_by_tag(REGISTERED, "arch").items() if v.tags.get("datasets") == ",".join(datasets)
    }
    if not versions:
        raise dg.Failure(f"no {REGISTERED} version trained on {datasets}: materialize part_separation_model first")
    scores, confusions = {}, {}
    for arch, version in versions.items():
        model, cfg = load_version(home, tracking, version)
        with_hints, without = ps.evaluate(model, cfg, test_songs, True), ps.evaluate(model, cfg, test_songs, False)
        rows += instrumentation.model_rows(arch, with_hints, without)
        scores[arch] = {"test_accuracy": with_hints["accuracy"], "test_accuracy_no_hints": without["accuracy"]}
        confusions[arch] = part_baselines.confusion_matrix(without["predictions"], without["labels"], len(part_names))
        tracking.log_version_metrics(version, scores[arch])
    table = instrumentation.results_table(rows)
    ranked = sorted(versions, key=lambda a: scores[a]["test_accuracy_no_hints"], reverse=True)
    best = ranked[0]
    normalised = confusions[best] / np.maximum(confusions[best].sum(axis=1, keepdims=True), 1)
    png = plots.matrix_png(
        normalised, part_names, part_names, title=f"{best}: confusion on the test songs", xlabel="predicted part",
        ylabel="true part", colour_label="share of the true part's notes", fmt="{:.2f}",
    )
    with tracking.run(context, run_name="part_separation_eval") as run:
        for arch, metrics in scores.items():
            mlflow.log_metrics({f"{arch}.{k}": v for k, v in metrics.items()})
        mlflow.log_metrics({"baseline." + metric_key(r["model"]): r["accuracy"] for r in rows if r["model"] not in versions})
        mlflow.log_text(table.to_csv(index=False), "table_4_2.csv")
        mlflow.log_image(plots.png_image(png), f"confusion_{best}.png")
        promoted = [a for a in ranked if tracking.promote_if_better(REGISTERED, versions[a], "test_accuracy_no_hints", lower_is_better=False)]
    champion = tracking.get_alias_version(REGISTERED, "champion")
    context.add_output_metadata(
        {
            "table": dg.MetadataValue.md(markdown_table(table)),
            "confusion_matrix": dg.MetadataValue.md(png_markdown("confusion matrix", png)),
            "champion_version": str(champion.version) if champion is not None else "",
            "promoted": dg.MetadataValue.json(promoted),
            "mlflow_run": tracking.run_url(run),
        }
    )
    return table


class InstrumentationConfig(dg.Config):
    inputs: list[str] = []  # score files (MIDI, MusicXML, ...); empty: downmixes of the first test songs
    examples: int = 3
    alias: str = "champion"
    datasets: list[str] = []


def champion(home: HomeResource, tracking: MlflowResource, alias: str):
    version = tracking.get_alias_version(REGISTERED, alias)
    if version is None:
        raise dg.Failure(
            f"no registered model {REGISTERED}@{alias}: materialize part_separation_model and part_separation_eval first"
        )
    return version, *load_version(home, tracking, version)


@dg.asset(
    name="instrumentation", deps=["part_separation_eval"], group_name=GROUP, io_manager_key="shard_io", code_version=CODE_VERSION
)
def instrumentation_asset(
    context: dg.AssetExecutionContext, config: InstrumentationConfig, home: HomeResource, tracking: MlflowResource
) -> pd.DataFrame:
    """Solo scores arranged by the champion: MIDI, audio and piano rolls, in the UI and in MLflow."""
    version, model, cfg = champion(home, tracking, config.alias)
    part_names, scheme = tuple(version.tags.get("part_names", "").split(",")), version.tags.get("scheme", "")
    if config.inputs:
        sources = [(Path(p).stem, muspy.read(p)) for p in config.inputs]
    else:
        datasets = part_datasets(home, config.datasets)
        sources = [
            (s.song, instrumentation.labelled_music(s, s.label)) for s in read_songs(home, datasets, "test")[: config.examples]
        ]
    out_dir = Path(home.home.cache) / "instrumentation" / context.run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    soundfont, rows, rolls = soundfont_path(), [], []
    for name, music in sources:
        row = {"input": name, "midi": "", "audio": "", "notes": 0, "error": ""}
        try:
            arranged = instrumentation.arrange(music, model, cfg, part_names, scheme)
        except instrumentation.InstrumentationError as exc:
            rows.append(row | {"error": str(exc)})
            continue
        stem = out_dir / re.sub(r"[^\w.-]+", "_", name)  # song names are dataset paths such as bach/bwv11.6.mxl
        midi = stem.with_name(stem.name + ".mid")
        muspy.write_midi(midi, arranged)
        png = plots.pianoroll_png(arranged, f"{name} arranged", max_beats=32)
        stem.with_name(stem.name + ".png").write_bytes(png)
        rolls.append(png_markdown(name, png))
        row |= {"midi": str(midi), "notes": sum(len(t.notes) for t in arranged.tracks)}
        if soundfont is not None:
            try:
                wav = stem.with_name(stem.name + ".wav")
                render_midi(midi, wav, soundfont)
                row["audio"] = str(wav)
            except RenderError as exc:
                row["error"] = str(exc)
        rows.append(row)
    with tracking.run(context, run_name="instrumentation") as run:
        mlflow.log_artifacts(str(out_dir), "arrangements")
    frame = pd.DataFrame(rows, columns=["input", "midi", "audio", "notes", "error"])
    context.add_output_metadata(
        {
            "model_version": str(version.version),
            "piano_rolls": dg.MetadataValue.md("\n\n".join(rolls)),
            "results": dg.MetadataValue.md(markdown_table(frame)),
            "mlflow_run": tracking.run_url(run),
        }
    )
    return frame


assets = [part_notes_asset, part_separation_model, part_separation_eval, instrumentation_asset]
