"""Dagster wiring of the Deep Performer: alignment, synthesis (with the Table 5.1 ablations) and
vocoder models trained on `performance_clips`, and the evaluation that promotes them."""

import os
import sys
from dataclasses import asdict

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from mlflow.entities.model_registry import ModelVersion

from assets.core.distributed import train_distributed
from assets.core.metadata import markdown_table, png_markdown
from assets.core.resources import HomeResource
from assets.core.stages import read_shards, require
from assets.core.tools import soundfont_path
from assets.core.vocoders import train_vocoder
from assets.core.training import (
    checkpoint_dir,
    log_step,
    profile_config,
    register_model,
    training_metadata,
)
from assets.deep_performer import evaluation, performing, training_sets
from assets.deep_performer.evaluation import Loaded
from assets.deep_performer.rendering import LABEL as RENDERING
from assets.deep_performer.training_sets import VARIANTS, clip_audio
from models import deep_performer as dp
from models import vocoder as voc
from models.training import default_device
from storage import shards
from storage.tracking import BASELINE_ARTIFACT, MlflowResource, baseline_record, baseline_text, unbeaten

GROUP = "deep_performer"
ALIGNMENT, SYNTHESIS, VOCODER = "performance_alignment", "performance_synthesis", "performance_vocoder"
VARIANT_PARTITIONS = dg.StaticPartitionsDefinition(list(VARIANTS))
CLIPS_DEP = dg.AssetDep("performance_clips", partition_mapping=dg.AllPartitionMapping())


def read_clips(home: HomeResource, split: str) -> pa.Table:
    partitions = shards.list_partitions(home.home.datasets, "performance_clips")
    if not partitions:
        raise dg.Failure("performance_clips is not materialized: run violin_data_job on the recordings first")
    return shards.read_table(home.home.datasets, "performance_clips", partitions, filter=pc.field("split") == split)


def clip_tables(home: HomeResource) -> tuple[pa.Table, pa.Table]:
    train, valid = read_clips(home, "train"), read_clips(home, "valid")
    if not train.num_rows or not valid.num_rows:
        raise dg.Failure(f"performance_clips holds {train.num_rows} training and {valid.num_rows} validation clips; need both")
    return train, valid


class DeepPerformerTrainConfig(dg.Config):
    """The paper's settings are the `paper` profile of models.deep_performer; `smoke` is tiny."""

    profile: str = "smoke"
    max_steps: int = 0  # 0: the profile's
    seed: int = 0
    nproc: int = 1  # training processes under torchrun (one per GPU); 1 trains in this process


def train_and_register(
    context: dg.AssetExecutionContext, config: DeepPerformerTrainConfig, home: HomeResource, tracking: MlflowResource,
    kind: str, variant: str,
) -> dg.MaterializeResult:
    """Train one Deep Performer model on every recording's clips and register it with its performer list."""
    train, valid = clip_tables(home)
    performers, train_clips, valid_clips = training_sets.training_clips(train, valid)
    base = profile_config(dp.PROFILES, config.profile, config.seed, config.max_steps)
    cfg = training_sets.variant_config(base, len(performers), variant)
    name = ALIGNMENT if kind == "alignment" else SYNTHESIS
    with checkpoint_dir(context, home, cfg, name, variant) as ckpt_dir, tracking.run(context, run_name=f"{name}-{variant}") as run:
        if config.nproc > 1:
            result, model_dir = train_distributed(
                f"deep_performer_{kind}", cfg, train_clips, valid_clips, ckpt_dir, config.nproc, log_step
            )
        else:
            model, result = dp.train(kind, cfg, train_clips, valid_clips, ckpt_dir, log_step, progress=sys.stderr.isatty())
            model_dir = os.path.join(ckpt_dir, "model")
            dp.save_model(model, cfg, model_dir)
        mlflow.log_params({**asdict(cfg), "profile": config.profile, "train_clips": len(train_clips)})
        performing.write_context(model_dir, performers, train.column("qpm").to_numpy())
        tags = {"kind": kind, "variant": variant, "profile": config.profile, "performers": ",".join(performers)}
        version = register_model(tracking, run, model_dir, name, tags)
    metadata = training_metadata(name, version, result, tracking.run_url(run))
    return dg.MaterializeResult(metadata=metadata | {"train_clips": len(train_clips), "valid_clips": len(valid_clips)})


@dg.asset(deps=[CLIPS_DEP], group_name=GROUP, retry_policy=dg.RetryPolicy(max_retries=2))
def performance_alignment_model(
    context: dg.AssetExecutionContext, config: DeepPerformerTrainConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """Note timing from the score: onset and duration in frames from pitch, beats, tempo and performer."""
    return train_and_register(context, config, home, tracking, "alignment", "full")


@dg.asset(deps=[CLIPS_DEP], partitions_def=VARIANT_PARTITIONS, group_name=GROUP, retry_policy=dg.RetryPolicy(max_retries=2))
def performance_synthesis_model(
    context: dg.AssetExecutionContext, config: DeepPerformerTrainConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """The log-mel synthesis model; partitions are the full model and its two ablations."""
    return train_and_register(context, config, home, tracking, "synthesis", context.partition_key)


class VocoderTrainConfig(dg.Config):
    """`paper` is HiFi-GAN v2 (a GPU job); `smoke` trains a tiny one. Griffin-Lim needs no training."""

    profile: str = "smoke"
    max_steps: int = 0
    seed: int = 0


@dg.asset(deps=[CLIPS_DEP], group_name=GROUP, retry_policy=dg.RetryPolicy(max_retries=2))
def performance_vocoder(
    context: dg.AssetExecutionContext, config: VocoderTrainConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """HiFi-GAN trained on the recordings' clips, scored against Griffin-Lim on the validation clips."""
    train, valid = clip_tables(home)
    train_audio, valid_audio = clip_audio(train), clip_audio(valid)
    cfg = profile_config(voc.PROFILES, config.profile, config.seed, config.max_steps)
    return train_vocoder(context, home, tracking, cfg, config.profile, VOCODER, train_audio, valid_audio)


class PerformanceEvalConfig(dg.Config):
    samples: int = 2  # validation clips rendered to audio and spectrograms


def load_performer(home: HomeResource, tracking: MlflowResource, version: ModelVersion) -> Loaded:
    """A registered alignment or synthesis model with the performer vocabulary it travels with."""
    model_dir = tracking.fetch(version, home.home.cache)
    model, cfg = dp.load_model(model_dir, default_device())
    return Loaded(str(version.version), model, cfg, performing.read_context(model_dir)["performers"])


def render_transposes(home: HomeResource, valid: pa.Table) -> dict[str, int]:
    """Each validation recording's transposition (a semitone down in baroque tuning), as `score_renders` played it."""
    recordings = set(valid.column("recording").to_pylist())
    return {r: read_shards(home, "score_renders", r).column("transpose")[0].as_py() for r in recordings}


def load_hifigan(home: HomeResource, tracking: MlflowResource, version: ModelVersion) -> Loaded:
    return Loaded(str(version.version), voc.load_vocoder(tracking.fetch(version, home.home.cache), default_device())[0])


@dg.asset(
    deps=["performance_alignment_model", dg.AssetDep("performance_synthesis_model", partition_mapping=dg.AllPartitionMapping()),
          "performance_vocoder"],
    group_name=GROUP, io_manager_key="shard_io",
)  # fmt: skip
def performance_eval(
    context: dg.AssetExecutionContext, config: PerformanceEvalConfig, home: HomeResource, tracking: MlflowResource
) -> pd.DataFrame:
    """The paper's Table 5.1 (mel MSE on the validation clips of the full model, its ablations and the
    aligned FluidSynth rendering), the alignment model's timing error and the vocoders' resynthesis
    error; promotes the full model when it beats the rendering, the alignment model, and a HiFi-GAN
    that beats Griffin-Lim to `champion`. The run logs the rendering's record, which `baton perform`
    plays in place of a synthesis champion that none earned."""
    require("fluidsynth", "musescore-general-soundfont-small")
    train, valid = clip_tables(home)
    variants = tracking.newest_by_tag(SYNTHESIS, "variant")
    if "full" not in variants:
        raise dg.Failure(f"no {SYNTHESIS} version of the full model: materialize performance_synthesis_model[full] first")
    synthesis = {variant: load_performer(home, tracking, version) for variant, version in variants.items()}
    rows, mse = evaluation.synthesis_rows(synthesis, valid)
    for variant, score in mse.items():
        tracking.log_version_metrics(variants[variant], {"eval_mel_mse": score})
    baseline = evaluation.rendering_row(valid, render_transposes(home, valid), soundfont_path())
    rows.append(baseline)
    rule = {RENDERING: baseline["value"]}
    record = baseline_record(
        "eval_mel_mse", True, rule, f"Deep Performer v{variants['full'].version}", mse["full"],
        median_qpm=float(np.median(train.column("qpm").to_numpy())),
    )  # fmt: skip
    below = baseline_text(unbeaten(mse["full"], rule, lower_is_better=True))
    aligner = tracking.newest_by_tag(ALIGNMENT, "kind").get("alignment")
    alignment = load_performer(home, tracking, aligner) if aligner is not None else None
    if alignment is not None:
        timing_rows, timing = evaluation.alignment_rows(alignment, valid)
        tracking.log_version_metrics(aligner, timing)
        rows += timing_rows
    hifigan = tracking.newest_by_tag(VOCODER, "kind").get("hifigan")
    vocoders = evaluation.vocoder_scores(clip_audio(valid), load_hifigan(home, tracking, hifigan) if hifigan is not None else None)
    if vocoders.hifigan is not None:
        tracking.log_version_metrics(hifigan, {"eval_mel_l1": vocoders.hifigan})
    table = evaluation.results_table(rows + vocoders.rows)
    out_dir = os.path.join(home.home.cache, "performance_eval", context.run_id)
    samples = evaluation.write_samples(out_dir, valid, synthesis["full"], alignment, config.samples)
    with tracking.run(context, run_name="performance_eval") as run:
        mlflow.log_metrics(evaluation.table_metrics(table))
        mlflow.log_text(table.to_csv(index=False), "table_5_1.csv")
        mlflow.log_artifacts(out_dir, "samples")
        mlflow.log_dict(record, BASELINE_ARTIFACT)
        beat = tracking.promote_if_better(SYNTHESIS, variants["full"], "eval_mel_mse", baselines=rule)
        promoted = [SYNTHESIS] if beat else []
        if aligner is not None and tracking.promote_if_better(ALIGNMENT, aligner, "eval_loss"):
            promoted.append(ALIGNMENT)
        inversion = {"Griffin-Lim": vocoders.griffin_lim}  # a HiFi-GAN must beat the untrained inversion
        if hifigan is not None and tracking.promote_if_better(VOCODER, hifigan, "eval_mel_l1", baselines=inversion):
            promoted.append(VOCODER)
    context.add_output_metadata(
        {
            "table": dg.MetadataValue.md(markdown_table(table)),
            "samples": dg.MetadataValue.md("\n\n".join(png_markdown(name, png) for name, png in samples)),
            "promoted": dg.MetadataValue.json(promoted),
            "champion_baselines": dg.MetadataValue.json(rule),
            "below_baseline": dg.MetadataValue.json({"full": below} if below else {}),
            "mlflow_run": tracking.run_url(run),
        }
    )
    return table


assets = [performance_alignment_model, performance_synthesis_model, performance_vocoder, performance_eval]
