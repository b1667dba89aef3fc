"""Dagster wiring of CLIPSonic (thesis ch. 7): mel crops of every video batch, the diffusion models
(image-queried and the two text-to-audio baselines), the diffusion prior, the vocoder, the domain
classifier the offline metrics use, the samples of every query mode and their evaluation."""

import os
import sys
from dataclasses import asdict, replace

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa

from assets.clipsonic import crops, registry, sampling
from assets.clipsonic import evaluation as ev
from assets.clipsonic.registry import DOMAIN, PRIOR, REGISTERED, VOCODER
from assets.core.metadata import markdown_table, png_markdown
from assets.core.metric_keys import finite, metric_key
from assets.core.plots import png_image
from assets.core.resources import HomeResource
from assets.core.stages import read_all
from assets.core.vocoders import train_vocoder
from assets.videos.tables import MixedEmbeddings
from assets.core.training import checkpoint_dir, log_step, profile_config, register_model, training_metadata
from models import audio_metrics as am
from models import clip_embed
from models import clipsonic as cso
from models import vocoder as voc
from models.training import default_device
from storage import shards
from storage.io_manager import UNPARTITIONED
from storage.tracking import MlflowResource

GROUP = "clipsonic"
CONDITIONS = dg.StaticPartitionsDefinition(list(cso.CONDITIONS))
PRIORS = dg.StaticPartitionsDefinition(["sd"])  # the dataset's own prior; PD's is pretrained, loaded at sampling
ALL_BATCHES = [
    dg.AssetDep(asset, partition_mapping=dg.AllPartitionMapping()) for asset in ("videos", "video_audio", "clip_embeddings")
]
RETRY = dg.RetryPolicy(max_retries=2)


def read_crops(home: HomeResource) -> pa.Table:
    table = shards.read_table(home.home.datasets, "clipsonic_mels", UNPARTITIONED)
    if not table.num_rows:
        raise dg.Failure("clipsonic_mels has no crops: materialize it after video_data_job")
    return table


def clip_model_of(table: pa.Table) -> str:
    return table.column("clip_model")[0].as_py()


def labelled_splits(table: pa.Table, *names: str) -> list[pa.Table]:
    """The labelled crops of each split; a split without any fails the step with the counts."""
    parts = [crops.split(table, name, labelled=True) for name in names]
    if any(part.num_rows == 0 for part in parts):
        counts = ", ".join(f"{name} {part.num_rows}" for name, part in zip(names, parts))
        raise dg.Failure(f"labelled crops per split: {counts}; every split needs some (more videos per label)")
    return parts


def failure(exc: Exception) -> dg.Failure:
    """A missing weight or unusable input: one line, and no retry, since a retry cannot fix it."""
    return dg.Failure(str(exc).splitlines()[0], allow_retries=False)


@dg.asset(deps=ALL_BATCHES, group_name=GROUP, io_manager_key="shard_io")
def clipsonic_mels(context: dg.AssetExecutionContext, home: HomeResource) -> pa.Table:
    """2 s log-mel crops (16 kHz, hop 512, 64 bands) of every video batch's audio, each with the CLIP
    image embeddings of its video's frames, in the video's split."""
    try:
        table = crops.crops_table(read_all(home, "video_audio"), read_all(home, "clip_embeddings"))
    except MixedEmbeddings as exc:
        raise failure(exc) from exc
    splits = {name: crops.split(table, name).num_rows for name in ("train", "valid", "test")}
    context.add_output_metadata({"crops": table.num_rows, **{f"{k}_crops": v for k, v in splits.items()},
                                 "labels": len(crops.labels_of(table)),
                                 "clip_model": clip_model_of(table) if table.num_rows else ""})  # fmt: skip
    return table


class ClipSonicTrainConfig(dg.Config):
    """`paper` is the thesis's model (a GPU job); `demo` learns the synthetic instruments on a CPU in minutes."""

    profile: str = "smoke"
    max_steps: int = 0
    seed: int = 0
    clap_model: str = ""  # CLAP-TTA only: a folder saved with ClapModel/ClapProcessor.save_pretrained


@dg.asset(deps=["clipsonic_mels"], partitions_def=CONDITIONS, group_name=GROUP, retry_policy=RETRY)
def clipsonic_model(
    context: dg.AssetExecutionContext, config: ClipSonicTrainConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """The mel diffusion model conditioned on frame embeddings (iq, CLIPSonic) or on the label's CLIP or
    CLAP text embedding (the CLIP-TTA and CLAP-TTA baselines); registered as clipsonic@candidate."""
    condition = context.partition_key
    table = read_crops(home)
    clip_model = clip_model_of(table)
    train_t, valid_t = labelled_splits(table, "train", "valid")
    if condition == "iq":
        train, valid, cond_dim = crops.image_set(train_t), crops.image_set(valid_t), crops.EMBED_DIM
    else:
        try:
            embeds = sampling.text_conditions(condition, crops.labels_of(table), clip_model, config.clap_model)
        except (clip_embed.ClipWeightsMissing, am.ClapWeightsMissing) as exc:
            raise failure(exc) from exc
        train, valid = crops.label_set(train_t, embeds), crops.label_set(valid_t, embeds)
        cond_dim = len(next(iter(embeds.values())))
    base = profile_config(cso.PROFILES, config.profile, config.seed, config.max_steps)
    cfg = replace(base, condition=condition, cond_dim=cond_dim)
    with checkpoint_dir(context, home, cfg, REGISTERED, condition) as ckpt_dir, tracking.run(
        context, run_name=f"{REGISTERED}-{condition}"
    ) as run:
        model, result = cso.train(cfg, train, valid, ckpt_dir, log_step, progress=sys.stderr.isatty())
        model_dir = os.path.join(ckpt_dir, "model")
        cso.save_model(model, cfg, model_dir)
        mlflow.log_params({**asdict(cfg), "profile": config.profile, "clip_model": clip_model, "train_crops": len(train.mels)})
        tags = {"condition": condition, "clip_model": clip_model, "profile": config.profile}
        version = register_model(tracking, run, model_dir, REGISTERED, tags | ({"clap_model": config.clap_model} if condition == "clap_tta" else {}))
    metadata = training_metadata(REGISTERED, version, result, tracking.run_url(run))
    return dg.MaterializeResult(metadata=metadata | {"train_crops": len(train.mels), "valid_crops": len(valid.mels)})


class PriorTrainConfig(dg.Config):
    profile: str = "smoke"
    max_steps: int = 0
    seed: int = 0


@dg.asset(deps=["clipsonic_mels"], partitions_def=PRIORS, group_name=GROUP, retry_policy=RETRY)
def clipsonic_prior(
    context: dg.AssetExecutionContext, config: PriorTrainConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """CLIPSonic-SD's diffusion prior: from the CLIP text of "a photo of [label]" to the CLIP image
    embeddings of that label's frames, on the training videos; registered as clipsonic_prior@candidate."""
    table = read_crops(home)
    clip_model = clip_model_of(table)
    train_t, valid_t = labelled_splits(table, "train", "valid")
    try:
        bundle = clip_embed.load_clip(clip_model)
    except clip_embed.ClipWeightsMissing as exc:
        raise failure(exc) from exc
    images = crops.label_images(train_t)
    train, valid = sampling.prior_set(bundle, images), sampling.prior_set(bundle, crops.label_images(valid_t))
    cfg = profile_config(cso.PRIOR_PROFILES, config.profile, config.seed, config.max_steps)
    with checkpoint_dir(context, home, cfg, PRIOR, context.partition_key) as ckpt_dir, tracking.run(context, run_name=PRIOR) as run:
        prior, result = cso.train_prior(cfg, train, valid, ckpt_dir, log_step, progress=sys.stderr.isatty())
        model_dir = os.path.join(ckpt_dir, "model")
        cso.save_prior(prior, cfg, model_dir)
        mlflow.log_params({**asdict(cfg), "profile": config.profile, "clip_model": clip_model})
        tags = {"kind": context.partition_key, "clip_model": clip_model, "profile": config.profile, "labels": ",".join(images)}
        version = register_model(tracking, run, model_dir, PRIOR, tags)
    return dg.MaterializeResult(metadata=training_metadata(PRIOR, version, result, tracking.run_url(run)) | {"texts": len(train.text_embeds)})


def split_audio(home: HomeResource, split: str) -> list[np.ndarray]:
    audio = read_all(home, "video_audio")
    return [np.frombuffer(row["audio"], dtype=np.float32) for row in audio.to_pylist() if row["split"] == split]


class VocoderTrainConfig(dg.Config):
    """HiFi-GAN on the dataset's own mels (the thesis trains BigVGAN; see the README for why HiFi-GAN)."""

    profile: str = "smoke"
    max_steps: int = 0
    seed: int = 0


@dg.asset(deps=["clipsonic_mels", *ALL_BATCHES], group_name=GROUP, retry_policy=RETRY)
def clipsonic_vocoder(
    context: dg.AssetExecutionContext, config: VocoderTrainConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """HiFi-GAN inverting CLIPSonic's mels, trained on the training videos' audio and scored against
    Griffin-Lim on the validation videos; registered as clipsonic_vocoder@candidate."""
    train_audio, valid_audio = split_audio(home, "train"), split_audio(home, "valid")
    if not train_audio or not valid_audio:
        raise dg.Failure(f"{len(train_audio)} training and {len(valid_audio)} validation videos: need both")
    cfg = profile_config(voc.CLIPSONIC_PROFILES, config.profile, config.seed, config.max_steps)
    return train_vocoder(context, home, tracking, cfg, config.profile, VOCODER, train_audio, valid_audio)


class DomainTrainConfig(dg.Config):
    profile: str = "smoke"
    max_steps: int = 0
    seed: int = 0


@dg.asset(deps=["clipsonic_mels"], group_name=GROUP, retry_policy=RETRY)
def clipsonic_domain_classifier(
    context: dg.AssetExecutionContext, config: DomainTrainConfig, home: HomeResource, tracking: MlflowResource
) -> dg.MaterializeResult:
    """The evaluation's domain backbone: an audio classifier of the dataset's labels trained on the real
    training crops; it labels generated clips and embeds them for a Fréchet distance."""
    train_t, valid_t = labelled_splits(read_crops(home), "train", "valid")
    cfg = profile_config(am.DOMAIN_PROFILES, config.profile, config.seed, config.max_steps)
    with checkpoint_dir(context, home, cfg, DOMAIN) as ckpt_dir, tracking.run(context, run_name=DOMAIN) as run:
        classifier, result = am.train_domain_classifier(
            cfg, crops.mels_of(train_t), train_t.column("label").to_pylist(), crops.mels_of(valid_t),
            valid_t.column("label").to_pylist(), ckpt_dir, log_step, progress=sys.stderr.isatty(),
        )  # fmt: skip
        accuracy = float(np.mean(np.asarray(am.classify(classifier, crops.mels_of(valid_t))) == np.asarray(valid_t.column("label").to_pylist())))
        mlflow.log_params({**asdict(cfg), "profile": config.profile})
        mlflow.log_metric("val_accuracy", accuracy)
        model_dir = os.path.join(ckpt_dir, "model")
        am.save_classifier(classifier, cfg, model_dir)
        version = register_model(tracking, run, model_dir, DOMAIN, {"profile": config.profile})
    metadata = training_metadata(DOMAIN, version, result, tracking.run_url(run))
    return dg.MaterializeResult(metadata=metadata | {"val_accuracy": accuracy})


class SamplesConfig(dg.Config):
    """Which test queries each mode answers, and how the diffusion model samples them."""

    per_label: int = 8  # test crops queried per label, in every mode
    sampler: str = "ddim"  # ddim (fast) or ddpm (the 1,000-step sampler)
    steps: int = 0  # 0: the model's own (its fast_steps for ddim, sample_steps for ddpm)
    guidance: float = -1.0  # classifier-free guidance scale w; negative: the model's default
    ddpm_per_label: int = 1  # crops per label also sampled with the 1,000-step sampler, to compare
    sweep: list[float] = [0.0, 1.0, 2.0, 4.0, 8.0]  # guidance scales of Figure 7.3 (IQ)
    sweep_per_label: int = 2
    pd_prior: str = ""  # CLIPSonic-PD: a pretrained prior folder (Baton's prior layout); empty: no PD row
    clap_model: str = ""  # CLAP-TTA's text queries: the CLAP folder its model was trained with
    listen: int = 1  # WAVs and spectrograms per mode and label
    seed: int = 0


@dg.asset(
    deps=[dg.AssetDep("clipsonic_model", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("clipsonic_prior", partition_mapping=dg.AllPartitionMapping()), "clipsonic_vocoder"],
    group_name=GROUP, io_manager_key="shard_io",
)  # fmt: skip
def clipsonic_samples(
    context: dg.AssetExecutionContext, config: SamplesConfig, home: HomeResource, tracking: MlflowResource
) -> pa.Table:
    """Mels generated for the test queries of every mode (IQ, shuffled IQ, ZS, SD, PD when a pretrained
    prior is given, CLIP-TTA, CLAP-TTA when trained), the test mels themselves for the vocoder's upper
    bound, the 1,000-step sampler's and the guidance sweep's; WAVs and spectrograms go to MLflow."""
    table = read_crops(home)
    clip_model = clip_model_of(table)
    (test,) = labelled_splits(table, "test")
    models = registry.load_models(tracking, home.home.cache, clip_model)
    if "iq" not in models:
        raise dg.Failure(f"no {REGISTERED} image-queried model trained on {clip_model}: materialize clipsonic_model[iq] first")
    prior = registry.load_newest(tracking, home.home.cache, PRIOR, cso.load_prior, clip_model)
    try:
        bundle = clip_embed.load_clip(clip_model)
        pd_prior = sampling.Loaded(None, *cso.load_prior(config.pd_prior, default_device())) if config.pd_prior else None
        plan = sampling.Plan(config.per_label, config.sampler, config.steps, config.guidance, config.ddpm_per_label,
                             list(config.sweep), config.sweep_per_label, config.seed)  # fmt: skip
        generated, notes = sampling.sample_all(plan, test, models, prior, pd_prior, bundle, config.clap_model)
    except (clip_embed.ClipWeightsMissing, am.ClapWeightsMissing, OSError) as exc:
        raise failure(exc) from exc
    vocoder = registry.usable_vocoder(tracking, home.home.cache)
    out_dir = os.path.join(home.home.cache, "clipsonic_samples", context.run_id)
    listen = sampling.listening_set(generated, config.listen)
    ev.write_wavs(out_dir, [(name, voc.invert(mel, vocoder[1] if vocoder else None, cso.SPEC)) for name, mel in listen])
    grid = ev.mel_grid_png(listen[:16])
    with open(os.path.join(out_dir, "spectrograms.png"), "wb") as f:
        f.write(grid)
    with tracking.run(context, run_name="clipsonic_samples") as run:
        mlflow.log_artifacts(out_dir, "samples")
    context.add_output_metadata({
        "modes": ", ".join(sorted(set(generated.column("mode").to_pylist()))), "notes": "; ".join(notes),
        "spectrograms": dg.MetadataValue.md(png_markdown("generated log-mels", grid)),
        "examples": dg.MetadataValue.path(out_dir), "mlflow_run": tracking.run_url(run),
    })  # fmt: skip
    return generated


class ClipSonicEvalConfig(dg.Config):
    """Backbones for the metrics: VGGish and CLAP weights are local files; without them their columns stay empty."""

    vggish_weights: str = ""  # torchvggish's vggish-10086976.pth (or a state dict with its keys)
    clap_model: str = ""  # a folder saved with ClapModel/ClapProcessor.save_pretrained


@dg.asset(deps=["clipsonic_samples", "clipsonic_domain_classifier", *ALL_BATCHES], group_name=GROUP, io_manager_key="shard_io")
def clipsonic_eval(
    context: dg.AssetExecutionContext, config: ClipSonicEvalConfig, home: HomeResource, tracking: MlflowResource
) -> pd.DataFrame:
    """Table 7.1 (FAD with VGGish, CLAP score, the domain classifier's accuracy and FAD per mode), the
    query similarities of Table 7.2 and the guidance sweep of Figure 7.3; promotes the image-queried
    model, the prior and a vocoder that beats Griffin-Lim to `champion`."""
    generated = shards.read_table(home.home.datasets, "clipsonic_samples", UNPARTITIONED)
    try:
        backbones, notes = registry.load_backbones(tracking, home.home.cache, config.vggish_weights, config.clap_model)
    except (am.VGGishWeightsMissing, am.ClapWeightsMissing) as exc:
        raise failure(exc) from exc
    vocoder = registry.usable_vocoder(tracking, home.home.cache)
    if vocoder is None:
        notes.append("mels inverted by Griffin-Lim: no clipsonic_vocoder beats it")
    real = split_audio(home, "test")
    table = ev.evaluate(generated, real, backbones, vocoder[1] if vocoder else None)
    sweep = ev.rows_of(table, "sweep")
    promoted = registry.promote(tracking, table, registry.newest(tracking, VOCODER))
    png = ev.sweep_png(sweep) if len(sweep) else None
    with tracking.run(context, run_name="clipsonic_eval") as run:
        mlflow.log_metrics(finite({metric_key(f"{r['group']}.{r['mode']}.w{r['guidance']:g}.{k}"): r[k] for r in table.to_dict("records")
                                   for k in (*ev.METRICS, "query_similarity")}))  # fmt: skip
        mlflow.log_text(table.to_csv(index=False), "table.csv")
        if png:
            mlflow.log_image(png_image(png), "guidance_sweep.png")
    context.add_output_metadata({
        "table_7_1": dg.MetadataValue.md(markdown_table(ev.table_7_1(table))),
        "table_7_2": dg.MetadataValue.md(markdown_table(ev.table_7_2(table))), "notes": "; ".join(notes), "promoted": ", ".join(promoted),
        **({"guidance_sweep": dg.MetadataValue.md(png_markdown("guidance sweep", png))} if png else {}),
        "mlflow_run": tracking.run_url(run),
    })  # fmt: skip
    return table


assets = [clipsonic_mels, clipsonic_model, clipsonic_prior, clipsonic_vocoder, clipsonic_domain_classifier, clipsonic_samples, clipsonic_eval]
