"""Dagster wiring of CLIPSep: the model trained on every video batch's audio and frame embeddings
(CLIPSep, CLIPSep-NIT and the PIT baseline as partitions) and its SDR evaluation."""

import os
import sys
from dataclasses import asdict, replace

import dagster as dg
import mlflow
import pandas as pd
import pyarrow as pa

from assets.clipsep import evaluation, separation_data
from assets.clipsep.evaluation import LABELS, Evaluated
from assets.core import stages
from assets.core.distributed import train_distributed
from assets.core.metadata import markdown_table
from assets.core.resources import HomeResource
from assets.videos.tables import MixedEmbeddings
from assets.core.training import (
    checkpoint_dir,
    log_step,
    profile_config,
    register_model,
    training_metadata,
)
from models import clipsep as cs
from models.training import default_device
from storage.tracking import BASELINE_ARTIFACT, MlflowResource, baseline_record, baseline_text, unbeaten

GROUP = "clipsep"
REGISTERED = "clipsep"
METHODS = dg.StaticPartitionsDefinition(list(cs.METHODS))
ALL_BATCHES = [
    dg.AssetDep(asset, partition_mapping=dg.AllPartitionMapping()) for asset in ("video_audio", "clip_embeddings")
]


def read_all(home: HomeResource, asset: str) -> pa.Table:
    return stages.read_all(home, asset, "run video_data_job first")


def split_sources(home: HomeResource, split: str) -> tuple[list[cs.Source], str]:
    """The split's clip-long windows with their frame queries, and the CLIP model that embedded them."""
    try:
        return separation_data.split_sources(
            read_all(home, "video_audio"), read_all(home, "clip_embeddings"), read_all(home, "videos"), split
        )
    except MixedEmbeddings as exc:
        raise dg.Failure(str(exc)) from exc


class CLIPSepTrainConfig(dg.Config):
    """The paper's settings are the `paper` profile of models.clipsep; `smoke` is tiny and `demo`
    is sized for the demo's synthetic instrument set on a CPU."""

    profile: str = "smoke"
    max_steps: int = 0
    seed: int = 0
    nproc: int = 1  # training processes under torchrun (one per GPU); 1 trains in this process


@dg.asset(
    deps=ALL_BATCHES, partitions_def=METHODS, group_name=GROUP, retry_policy=dg.RetryPolicy(max_retries=2),
)  # fmt: skip
def clipsep_model(
    context: dg.AssetExecutionContext, config: CLIPSepTrainConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """One separation model on two-source mixtures of every batch's training videos: CLIPSep, with
    noise invariant training (NIT), or the query-free PIT baseline; registered as clipsep@candidate."""
    method = context.partition_key
    (train, clip_model), (valid, _) = split_sources(home, "train"), split_sources(home, "valid")
    if len({s.label for s in train}) < 2 or not valid:
        raise dg.Failure(f"{len(train)} training windows of {len({s.label for s in train})} labels and {len(valid)} "
                         "validation windows: need two labels to mix and a validation split")  # fmt: skip
    cfg = replace(profile_config(cs.PROFILES, config.profile, config.seed, config.max_steps), method=method)
    with checkpoint_dir(context, home, cfg, REGISTERED, method) as ckpt_dir, tracking.run(
        context, run_name=f"{REGISTERED}-{method}"
    ) as run:
        if config.nproc > 1:
            result, model_dir = train_distributed(REGISTERED, cfg, train, valid, ckpt_dir, config.nproc, log_step)
        else:
            model, result = cs.train(cfg, train, valid, ckpt_dir, log_step, progress=sys.stderr.isatty())
            model_dir = os.path.join(ckpt_dir, "model")
            cs.save_model(model, cfg, model_dir)
        mlflow.log_params({**asdict(cfg), "profile": config.profile, "clip_model": clip_model, "train_windows": len(train)})
        tags = {"method": method, "clip_model": clip_model, "profile": config.profile}
        version = register_model(tracking, run, model_dir, REGISTERED, tags)
    metadata = training_metadata(REGISTERED, version, result, tracking.run_url(run))
    return dg.MaterializeResult(metadata=metadata | {"train_windows": len(train), "valid_windows": len(valid)})


class CLIPSepEvalConfig(dg.Config):
    n_mixtures: int = 100  # deterministic test mixtures, one seed per index
    seed: int = 0
    samples: int = 2  # mixtures written out as audio


@dg.asset(
    deps=[dg.AssetDep("clipsep_model", partition_mapping=dg.AllPartitionMapping())],
    group_name=GROUP, io_manager_key="shard_io",
)  # fmt: skip
def clipsep_eval(
    context: dg.AssetExecutionContext, config: CLIPSepEvalConfig, home: HomeResource, tracking: MlflowResource
) -> pd.DataFrame:
    """SDR and SDR improvement (museval, the whole clip as one window) on deterministic test mixtures,
    the MUSIC+ protocol: image queries, text queries when the CLIP weights are real, the mixture and
    the PIT baseline; the better query model becomes `clipsep@champion` when it beats the mixture (SDRi
    above 0 dB), else `baton separate` writes the mixture back and says so."""
    test, clip_model = split_sources(home, "test")
    if len({s.label for s in test}) < 2:
        raise dg.Failure(f"the test split has {len(test)} windows of {len({s.label for s in test})} labels: need two to mix")
    versions = tracking.newest_by_tag(REGISTERED, "method")
    queried = {m: v for m, v in versions.items() if m != "pit" and v.tags.get("clip_model") == clip_model}
    if not queried:
        raise dg.Failure(f"no {REGISTERED} query model trained on {clip_model} embeddings: materialize clipsep_model first")
    loaded = {
        m: Evaluated(str(v.version), cs.load_model(tracking.fetch(v, home.home.cache), default_device())[0])
        for m, v in versions.items() if m in queried or m == "pit"
    }  # fmt: skip
    texts = evaluation.text_sources(test, clip_model)
    table, image_sdri = evaluation.sdr_table(
        {m: loaded[m] for m in queried}, loaded.get("pit"), test, texts, config.n_mixtures, config.seed
    )
    for method, score in image_sdri.items():
        tracking.log_version_metrics(queried[method], {"test_sdri_image": score})
    best = max(image_sdri, key=image_sdri.get)
    rule = evaluation.champion_baselines(table)
    record = baseline_record("test_sdri_image", False, rule, f"{LABELS[best]} v{queried[best].version}", image_sdri[best])
    out_dir = os.path.join(home.home.cache, "clipsep_eval", context.run_id)
    evaluation.write_examples(out_dir, loaded[best].model, test, config.samples, config.seed)
    with tracking.run(context, run_name="clipsep_eval") as run:
        mlflow.log_metrics(evaluation.sdr_metrics(table))
        mlflow.log_text(table.to_csv(index=False), "sdr.csv")
        mlflow.log_artifacts(out_dir, "examples")
        mlflow.log_dict(record, BASELINE_ARTIFACT)
        promoted = tracking.promote_if_better(REGISTERED, queried[best], "test_sdri_image", False, rule)
    below = {LABELS[m]: baseline_text(unbeaten(score, rule, False)) for m, score in image_sdri.items()}
    context.add_output_metadata(
        {
            "table": dg.MetadataValue.md(markdown_table(table)),
            "clip_model": clip_model,
            "text_queries": texts is not None,
            "test_windows": len(test),
            "promoted": f"{LABELS[best]} v{queried[best].version}" if promoted else "",
            "champion_baselines": dg.MetadataValue.json(rule),
            "below_baseline": dg.MetadataValue.json({label: text for label, text in below.items() if text}),
            "examples": dg.MetadataValue.path(out_dir),
            "mlflow_run": tracking.run_url(run),
        }
    )
    return table


assets = [clipsep_model, clipsep_eval]
