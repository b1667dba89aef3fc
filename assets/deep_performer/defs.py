"""Dagster wiring of the Deep Performer: alignment, synthesis (with the Table 5.1 ablations) and
vocoder models trained on `performance_clips`, and the evaluation that promotes them."""

import os
import sys
from dataclasses import asdict, replace

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import soundfile as sf

from assets.deep_performer import performing
from assets.violin import clips as clip_data
from models import deep_performer as dp
from models import vocoder as voc
from models.mel import SAMPLE_RATE
from models.training import default_device
from assets.core.metadata import markdown_table, png_markdown
from assets.core.resources import HomeResource
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

GROUP = "deep_performer"
CODE_VERSION = "1"
ALIGNMENT, SYNTHESIS, VOCODER = "performance_alignment", "performance_synthesis", "performance_vocoder"
VARIANTS = {  # Table 5.1: the full model and its two ablations
    "full": {},
    "no_notewise_pe": {"use_notewise_pe": False},
    "no_performer": {"use_performer": False},
}
VARIANT_LABELS = {
    "full": "Deep Performer",
    "no_notewise_pe": "w/o note-wise positional encoding",
    "no_performer": "w/o performer embedding",
}
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


def train_and_register(
    context: dg.AssetExecutionContext, config: DeepPerformerTrainConfig, home: HomeResource, tracking: MlflowResource,
    kind: str, variant: str,
) -> dg.MaterializeResult:
    """Train one Deep Performer model on every recording's clips and register it with its performer list."""
    train, valid = clip_tables(home)
    performers = sorted(set(clip_data.performer_vocabulary(train)) | set(clip_data.performer_vocabulary(valid)))
    train_clips, valid_clips = clip_data.to_clips(train, performers), clip_data.to_clips(valid, performers)
    base = profile_config(dp.PROFILES, config.profile, config.seed, config.max_steps)
    cfg = replace(base, n_performers=len(performers), **VARIANTS[variant])
    name = ALIGNMENT if kind == "alignment" else SYNTHESIS
    ckpt_dir = checkpoint_dir(context, home, name, variant)
    with tracking.run(context, run_name=f"{name}-{variant}") as run:
        model, result = dp.train(kind, cfg, train_clips, valid_clips, ckpt_dir, log_step, progress=sys.stderr.isatty())
        mlflow.log_params({**asdict(cfg), "profile": config.profile, "train_clips": len(train_clips)})
        model_dir = os.path.join(ckpt_dir, "model")
        dp.save_model(model, cfg, model_dir)
        performing.write_context(model_dir, performers, train.column("qpm").to_numpy())
        tags = {"kind": kind, "variant": variant, "profile": config.profile, "performers": ",".join(performers)}
        version = register_model(tracking, run, model_dir, name, tags)
    metadata = training_metadata(name, version, result, tracking.run_url(run))
    return dg.MaterializeResult(metadata=metadata | {"train_clips": len(train_clips), "valid_clips": len(valid_clips)})


@dg.asset(deps=[CLIPS_DEP], group_name=GROUP, retry_policy=dg.RetryPolicy(max_retries=2), code_version=CODE_VERSION)
def performance_alignment_model(
    context: dg.AssetExecutionContext, config: DeepPerformerTrainConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """Note timing from the score: onset and duration in frames from pitch, beats, tempo and performer."""
    return train_and_register(context, config, home, tracking, "alignment", "full")


@dg.asset(
    deps=[CLIPS_DEP], partitions_def=VARIANT_PARTITIONS, group_name=GROUP,
    retry_policy=dg.RetryPolicy(max_retries=2), code_version=CODE_VERSION,
)  # fmt: skip
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


def clip_audio(table: pa.Table) -> list[np.ndarray]:
    return [clip_data.decode_audio(data) for data in table.column("audio").to_pylist()]


@dg.asset(deps=[CLIPS_DEP], group_name=GROUP, retry_policy=dg.RetryPolicy(max_retries=2), code_version=CODE_VERSION)
def performance_vocoder(
    context: dg.AssetExecutionContext, config: VocoderTrainConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """HiFi-GAN trained on the recordings' clips, scored against Griffin-Lim on the validation clips."""
    train, valid = clip_tables(home)
    train_audio, valid_audio = clip_audio(train), clip_audio(valid)
    cfg = profile_config(voc.PROFILES, config.profile, config.seed, config.max_steps)
    ckpt_dir = checkpoint_dir(context, home, VOCODER)
    with tracking.run(context, run_name=VOCODER) as run:
        generator, result = voc.train_hifigan(cfg, train_audio, valid_audio, ckpt_dir, log_step, progress=sys.stderr.isatty())
        griffin_lim = voc.resynthesis_l1(valid_audio, voc.griffin_lim)
        mlflow.log_params({**asdict(cfg), "profile": config.profile})
        mlflow.log_metrics({"val_mel_l1": result.best_metric, "griffin_lim_mel_l1": griffin_lim})
        model_dir = os.path.join(ckpt_dir, "model")
        voc.save_vocoder(generator, cfg, model_dir)
        version = register_model(tracking, run, model_dir, VOCODER, {"kind": "hifigan", "profile": config.profile})
    metadata = training_metadata(VOCODER, version, result, tracking.run_url(run))
    return dg.MaterializeResult(metadata=metadata | {"griffin_lim_mel_l1": griffin_lim})


class PerformanceEvalConfig(dg.Config):
    samples: int = 2  # validation clips rendered to audio and spectrograms


def evaluate_synthesis(home: HomeResource, tracking: MlflowResource, valid: pa.Table) -> tuple[list[dict], dict]:
    """Table 5.1: mel MSE of the newest version of every variant on the validation clips."""
    rows, loaded = [], {}
    for variant, version in tracking.newest_by_tag(SYNTHESIS, "variant").items():
        model_dir = tracking.fetch(version, home.home.cache)
        model, cfg = dp.load_model(model_dir, default_device())
        context = performing.read_context(model_dir)
        mse = dp.mel_mse(model, cfg, clip_data.to_clips(valid, context["performers"]))
        tracking.log_version_metrics(version, {"eval_mel_mse": mse})
        rows.append({"model": VARIANT_LABELS.get(variant, variant), "version": str(version.version), "metric": "mel MSE", "value": mse})
        loaded[variant] = (version, model, cfg, context)
    return rows, loaded


def evaluate_alignment(home: HomeResource, tracking: MlflowResource, valid: pa.Table) -> tuple[list[dict], tuple | None]:
    newest = tracking.newest_by_tag(ALIGNMENT, "kind").get("alignment")
    if newest is None:
        return [], None
    model_dir = tracking.fetch(newest, home.home.cache)
    model, cfg = dp.load_model(model_dir, default_device())
    metrics = dp.alignment_metrics(model, cfg, clip_data.to_clips(valid, performing.read_context(model_dir)["performers"]))
    tracking.log_version_metrics(newest, {"eval_" + k.removeprefix("val_"): v for k, v in metrics.items()})
    labels = {"val_onset_mae_ms": "onset MAE (ms)", "val_duration_mae_ms": "duration MAE (ms)"}
    rows = [{"model": "alignment model", "version": str(newest.version), "metric": labels[k], "value": metrics[k]} for k in labels]
    return rows, (newest, model, cfg)


def evaluate_vocoder(home: HomeResource, tracking: MlflowResource, valid: pa.Table) -> tuple[list[dict], tuple | None]:
    """Resynthesis error of Griffin-Lim and of the newest HiFi-GAN; the vocoder is used only where it is better."""
    audio = clip_audio(valid)
    rows = [{"model": "Griffin-Lim", "version": "", "metric": "resynthesis mel L1", "value": voc.resynthesis_l1(audio, voc.griffin_lim)}]
    newest = tracking.newest_by_tag(VOCODER, "kind").get("hifigan")
    if newest is None:
        return rows, None
    generator, _ = voc.load_vocoder(tracking.fetch(newest, home.home.cache), default_device())
    error = voc.validate(generator, audio)["val_mel_l1"]
    tracking.log_version_metrics(newest, {"eval_mel_l1": error})
    rows.append({"model": "HiFi-GAN", "version": str(newest.version), "metric": "resynthesis mel L1", "value": error})
    return rows, (newest, generator, error < rows[0]["value"])


def write_samples(out_dir: str, valid: pa.Table, synthesis: tuple, alignment: tuple | None, count: int) -> list[str]:
    """Per sample clip: the recording, Griffin-Lim of its own mel (the inversion's ceiling), the full
    model with the recorded timing and, with an alignment model, from the score alone; wav + PNG."""
    _, model, cfg, context = synthesis
    clips = clip_data.to_clips(valid.slice(0, count), context["performers"])
    pngs = []
    for i, (clip, predicted) in enumerate(zip(clips, dp.predict(model, cfg, clips))):
        name = f"{valid['recording'][i].as_py()}-clip{valid['clip'][i].as_py()}"
        mels = {"recording": clip.mel, "synthesized (recorded timing)": predicted[: len(clip.mel)]}
        if alignment is not None:
            _, align_model, _ = alignment
            mels["synthesized (score only)"] = dp.synthesize(
                model, align_model, cfg, clip.pitch, clip.onset_beat, clip.duration_beat, clip.performer, clip.qpm
            )
        sf.write(os.path.join(out_dir, f"{name}-recording.wav"), clip_data.decode_audio(valid["audio"][i].as_py()), SAMPLE_RATE)
        for label, mel in mels.items():
            slug = label.split(" (")[-1].rstrip(")").replace(" ", "_") if "(" in label else "griffin_lim"
            sf.write(os.path.join(out_dir, f"{name}-{slug}.wav"), voc.griffin_lim(mel), SAMPLE_RATE)
        png = performing.spectrograms_png(list(mels.items()), title=name)
        with open(os.path.join(out_dir, f"{name}.png"), "wb") as f:
            f.write(png)
        pngs.append(png_markdown(name, png))
    return pngs


@dg.asset(
    deps=["performance_alignment_model", dg.AssetDep("performance_synthesis_model", partition_mapping=dg.AllPartitionMapping()),
          "performance_vocoder"],
    group_name=GROUP, io_manager_key="shard_io", code_version=CODE_VERSION,
)  # fmt: skip
def performance_eval(
    context: dg.AssetExecutionContext, config: PerformanceEvalConfig, home: HomeResource, tracking: MlflowResource
) -> pd.DataFrame:
    """The paper's Table 5.1 (mel MSE on the validation clips of the full model and its ablations),
    the alignment model's timing error and the vocoders' resynthesis error; promotes the full model,
    the alignment model and a HiFi-GAN that beats Griffin-Lim to `champion`."""
    _, valid = clip_tables(home)
    rows, synthesis = evaluate_synthesis(home, tracking, valid)
    if "full" not in synthesis:
        raise dg.Failure(f"no {SYNTHESIS} version of the full model: materialize performance_synthesis_model[full] first")
    alignment_rows, alignment = evaluate_alignment(home, tracking, valid)
    vocoder_rows, vocoder = evaluate_vocoder(home, tracking, valid)
    table = pd.DataFrame(rows + alignment_rows + vocoder_rows, columns=["model", "version", "metric", "value"])
    out_dir = os.path.join(home.home.cache, "performance_eval", context.run_id)
    os.makedirs(out_dir, exist_ok=True)
    pngs = write_samples(out_dir, valid, synthesis["full"], alignment, config.samples)
    with tracking.run(context, run_name="performance_eval") as run:
        mlflow.log_metrics({metric_key(f"{r['model']}.{r['metric']}"): r["value"] for r in table.to_dict("records")})
        mlflow.log_text(table.to_csv(index=False), "table_5_1.csv")
        mlflow.log_artifacts(out_dir, "samples")
        promoted = [SYNTHESIS] if tracking.promote_if_better(SYNTHESIS, synthesis["full"][0], "eval_mel_mse") else []
        if alignment is not None and tracking.promote_if_better(ALIGNMENT, alignment[0], "eval_loss"):
            promoted.append(ALIGNMENT)
        if vocoder is not None and vocoder[2] and tracking.promote_if_better(VOCODER, vocoder[0], "eval_mel_l1"):
            promoted.append(VOCODER)
    context.add_output_metadata(
        {
            "table": dg.MetadataValue.md(markdown_table(table)),
            "samples": dg.MetadataValue.md("\n\n".join(pngs)),
            "promoted": dg.MetadataValue.json(promoted),
            "mlflow_run": tracking.run_url(run),
        }
    )
    return table


assets = [performance_alignment_model, performance_synthesis_model, performance_vocoder, performance_eval]
