"""Every experiment as one Dagster job: one run the UI (or `baton experiment`) launches, one step per stage.

Each stage is an op that runs the asset jobs of its partitions as child runs on the experiment run's
own instance, tagged with the experiment's run id. A failed child run is recorded and the stages
after it still run where they can; the last stage fails the experiment, naming every failed child
run. Each job's run config is its experiment's `dg.Config` (the same fields as the command line);
`stage: data` runs only the data stages of the branch.
"""

from collections.abc import Callable

import dagster as dg
from pydantic import Field

from assets.clipsep.defs import METHODS
from assets.clipsonic.defs import CONDITIONS
from assets.core.dataset_shards import parse_key
from assets.core.partitions import DATASETS, VIDEO_BATCHES, add_partitions
from assets.core.resources import HomeResource
from assets.cross_dataset.defs import COMBINED
from assets.deep_performer.defs import VARIANT_PARTITIONS
from assets.instrumentation.defs import ARCHS
from assets.instrumentation.defs import DEFAULT_DATASETS as INSTRUMENTATION_DATASETS
from assets.mmt.codes import DEFAULT_DATASETS as MMT_DATASETS
from assets.violin.defs import SAMPLE
from models.clip_embed import DEFAULT_MODEL
from storage.home import BatonHome

EXPERIMENT_TAG = "baton/experiment_run"  # on every child run: the experiment run that started it
STAGE_TAG = "baton/experiment_stage"  # on every child run: the stage (op) that started it
STAGES = ("data", "all")
PAPER_DATASETS = ("bach_chorales", "monteverdi", "oneills", "palestrina", "ryans_mammoth", "trecento")
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # step events stay in the UI


class Experiment(dg.Config):
    """What every experiment takes."""

    stage: str = Field(default="all", description="all: every stage; data: only the data stages of the branch")
    profile: str = Field(default="paper", description="training profile: smoke, paper, demo (instrumentation, video, clipsonic)")
    steps: int = Field(default=0, description="training steps per model; 0: the profile's")


class MuspyExperiment(Experiment):
    datasets: list[str] = Field(default=list(PAPER_DATASETS), description="datasets to ingest and train on")
    arch: str = Field(default="lstm", description="language model: rnn, lstm, gru, transformer")


class MMTExperiment(Experiment):
    datasets: list[str] = Field(
        default=list(MMT_DATASETS), description="datasets to encode; the multi-part collections among them train MMT"
    )


class InstrumentationExperiment(Experiment):
    datasets: list[str] = Field(default=list(INSTRUMENTATION_DATASETS), description="datasets to extract parts from")
    archs: list[str] = Field(default=ARCHS.get_partition_keys(), description="part-separation architectures to train")


class PerformanceExperiment(Experiment):
    manifest: str = Field(default=SAMPLE, description="violin manifest: sample, release, or a Bach Violin Dataset info.csv")
    method: str = Field(default="v2", description="alignment method: v1, v2")
    vocoder_profile: str = Field(
        default="", description="HiFi-GAN's profile: smoke, paper (a GPU job), none (Griffin-Lim); empty: the profile"
    )


class VideoSource(Experiment):
    """What the video branches take to make their video batch."""

    source: str = Field(
        default="synthetic", description="videos: synthetic, a manifest CSV, a MUSIC or VGGSound index, a folder"
    )
    batch: str = Field(default="synthetic", description="the video_batches partition to fill")
    clip_model: str = Field(default=DEFAULT_MODEL, description="CLIP id or folder (baton/small-clip: offline)")
    per_instrument: int = Field(default=6, description="synthetic videos per instrument")
    seconds: float = Field(default=10.0, description="length of each synthetic video")


class VideoExperiment(VideoSource):
    methods: list[str] = Field(default=METHODS.get_partition_keys(), description="CLIPSep methods to train")
    n_mixtures: int = Field(default=100, description="test mixtures of the SDR evaluation")


class ClipSonicExperiment(VideoSource):
    conditions: list[str] = Field(default=list(CONDITIONS.get_partition_keys()), description="CLIPSonic models to train: iq, clip_tta, clap_tta")
    clap_model: str = Field(default="", description="CLAP folder (save_pretrained) for CLAP-TTA and the CLAP score; empty: both left out")
    vggish_weights: str = Field(default="", description="torchvggish's vggish-10086976.pth for FAD; empty: FAD (VGGish) left out")
    vocoder_profile: str = Field(default="", description="vocoder (HiFi-GAN) profile: smoke, demo, paper, none (Griffin-Lim); empty: the profile")
    per_label: int = Field(default=8, description="test crops queried per label in every mode")
    ddpm_per_label: int = Field(default=1, description="test crops per label also sampled by the 1,000-step DDPM")
    sweep_per_label: int = Field(default=2, description="test crops per label of the guidance sweep")


class Stage:
    """One stage of a running experiment: it runs child jobs and records how each ended."""

    def __init__(self, context: dg.OpExecutionContext, home: HomeResource, runs: list[dict]):
        from pipelines.definitions import build_defs  # definitions registers this module's jobs

        self.context, self.name, self.home = context, context.op.name, home.home
        self.defs = build_defs(BatonHome(home.root))
        self.runs = list(runs)

    def run(self, job: str, partition: str | None = None, ops: dict | None = None) -> bool:
        """Run one asset job (one partition) as a child run of the experiment; True when it succeeded."""
        where = f"{job}[{partition}]" if partition else job
        self.context.log.info(f"{where}: started")
        result = self.defs.resolve_job_def(job).execute_in_process(
            instance=self.context.instance,
            partition_key=partition,
            run_config={**QUIET, "ops": ops or {}},
            tags={EXPERIMENT_TAG: self.context.run_id, STAGE_TAG: self.name},
            raise_on_error=False,
        )
        self.runs.append({"stage": self.name, "job": job, "partition": partition, "run_id": result.run_id, "ok": result.success})
        log = self.context.log.info if result.success else self.context.log.error
        log(f"{where}: {'ok' if result.success else 'FAILED'} (run {result.run_id})")
        return result.success

    def ended(self, job: str, ok: bool) -> list[str]:
        """Partitions of `job` whose child run succeeded (ok) or failed (not ok) so far."""
        return [r["partition"] for r in self.runs if r["job"] == job and r["ok"] == ok]

    def add_partitions(self, partitions: dg.DynamicPartitionsDefinition, keys: list[str]) -> None:
        add_partitions(self.context.instance, partitions, keys)

    def dataset_keys(self, datasets: list[str]) -> dict[str, list[str]]:
        """dataset -> its `datasets` partitions (one, or one per shard), added to the instance."""
        from assets.scores.datasets import partition_keys

        keys = {dataset: partition_keys(dataset, self.home.local_datasets) for dataset in datasets}
        self.add_partitions(DATASETS, [key for dataset_keys in keys.values() for key in dataset_keys])
        return keys

    def ended_datasets(self, job: str, datasets: list[str], ok: bool) -> list[str]:
        """The `datasets` of which every shard (ok) or some shard (not ok) ended that way in `job`."""
        ended = {parse_key(key)[0] for key in self.ended(job, ok)}
        others = {parse_key(key)[0] for key in self.ended(job, not ok)}
        return [d for d in datasets if d in ended and (not ok or d not in others)]

    def skip(self, why: str) -> None:
        self.context.log.warning(f"{self.name} left out: {why}")

    def fail_on_failed_runs(self) -> None:
        failed = [r for r in self.runs if not r["ok"]]
        if failed:
            names = "; ".join(f"{r['job']}[{r['partition']}] (run {r['run_id']})" if r["partition"] else
                              f"{r['job']} (run {r['run_id']})" for r in failed)  # fmt: skip
            raise dg.Failure(
                description=f"{len(failed)} of {len(self.runs)} child runs failed: {names}",
                metadata={"failed_runs": dg.MetadataValue.json(failed)},
            )


Body = Callable[[Stage, Experiment], None]


def stage_op(config_cls: type[Experiment], name: str, body: Body, *, data: bool, first: bool, last: bool) -> dg.OpDefinition:
    """The op of one stage: `body` runs its child jobs (unless the run asks for data stages only and
    this one is not); the last stage fails the run when any child run failed."""

    def compute(context: dg.OpExecutionContext, config: Experiment, home: HomeResource, runs: list) -> list:
        if config.stage not in STAGES:
            raise dg.Failure(f"unknown stage {config.stage!r}: use one of {', '.join(STAGES)}")
        stage = Stage(context, home, runs)
        if data or config.stage == "all":
            body(stage, config)
        else:
            context.log.info(f"stage={config.stage}: {name} left out")
        if last:
            stage.fail_on_failed_runs()
        return stage.runs

    description = (body.__doc__ or "").strip() + ("" if data else " (not with stage=data)")
    if first:

        @dg.op(name=name, description=description)
        def first_op(context: dg.OpExecutionContext, config: config_cls, home: HomeResource) -> list:
            return compute(context, config, home, [])

        return first_op

    @dg.op(name=name, description=description)
    def later_op(context: dg.OpExecutionContext, config: config_cls, home: HomeResource, runs: list) -> list:
        return compute(context, config, home, runs)

    return later_op


def experiment_job(
    branch: str, config_cls: type[Experiment], stages: list[tuple[str, Body, bool]], description: str
) -> dg.JobDefinition:
    """The op job `<branch>_experiment` running `stages` (name, body, is a data stage) in order, configured
    by one `config_cls`. Its ops are `<branch>__<stage>`: op names are unique in a code location, and
    asset jobs already use the assets' names."""
    ops = [
        stage_op(config_cls, f"{branch}__{stage}", body, data=data, first=i == 0, last=i == len(stages) - 1)
        for i, (stage, body, data) in enumerate(stages)
    ]
    name = f"{branch}_experiment"

    def to_ops(values: dict) -> dict:
        return {**QUIET, "ops": {op.name: {"config": values} for op in ops}}

    @dg.job(
        name=name,
        description=description,
        config=dg.ConfigMapping(config_fn=to_ops, config_schema=config_cls.to_config_schema()),
        executor_def=dg.in_process_executor,  # the stages run one after another; each child run is in-process too
        tags={"baton/experiment": name},
    )
    def job():
        runs = ops[0]()
        for op in ops[1:]:
            runs = op(runs)

    return job


# The MusPy cross-dataset experiment.


def music_lm_config(config: MuspyExperiment) -> dict:
    return {"profile": config.profile, "arch": config.arch, "max_steps": config.steps}


def symbolic_datasets(stage: Stage, config: MuspyExperiment) -> None:
    """Every dataset from score files to event sequences and (unless stage=data) its music_lm; a
    sharded dataset's shards to event sequences, then one music_lm over all of them."""
    for dataset, keys in stage.dataset_keys(config.datasets).items():
        if config.stage == "data" or len(keys) > 1:
            ingested = [stage.run("ingest_scores_job", key) for key in keys]
            if config.stage != "data" and all(ingested):
                stage.run("music_lm_retrain", keys[0], {"music_lm": {"config": music_lm_config(config)}})
        else:
            stage.run("symbolic_dataset", dataset, {"music_lm": {"config": music_lm_config(config)}})


def completed(stage: Stage) -> list[str]:
    """The datasets whose lineage, music_lm included, completed."""
    return [parse_key(key)[0] for key in stage.ended("symbolic_dataset", ok=True) + stage.ended("music_lm_retrain", ok=True)]


def music_lm_combined(stage: Stage, config: MuspyExperiment) -> None:
    """The all-datasets and stratified models over the datasets whose lineage completed."""
    done = completed(stage)
    if not done:
        return stage.skip("no dataset completed its lineage")
    for mode in COMBINED.get_partition_keys():
        stage.run("music_lm_combined_job", mode, {"music_lm_combined": {"config": {**music_lm_config(config), "datasets": done}}})


def cross_dataset_perplexity(stage: Stage, config: MuspyExperiment) -> None:
    """Every model's perplexity on every completed dataset's test split."""
    done = completed(stage)
    if not done:
        return stage.skip("no dataset completed its lineage")
    stage.run("cross_dataset_perplexity_job", ops={"cross_dataset_perplexity": {"config": {"datasets": done}}})


# MMT and automatic instrumentation start from notes.


def ingest(stage: Stage, config: MMTExperiment | InstrumentationExperiment) -> None:
    """Score files to songs, notes and rejects for every dataset not ingested yet."""
    from storage import shards

    for key in [key for keys in stage.dataset_keys(config.datasets).values() for key in keys]:
        if shards.read_manifest(stage.home.datasets, "notes", key) is None:
            stage.run("score_notes_job", key)
        else:
            stage.context.log.info(f"{key}: notes already ingested")


def ingested(stage: Stage, datasets: list[str]) -> list[str]:
    """The partitions of the `datasets` none of whose shards failed to ingest."""
    failed = set(stage.ended_datasets("score_notes_job", datasets, ok=False))
    return [key for dataset, keys in stage.dataset_keys(datasets).items() if dataset not in failed for key in keys]


def mmt_codes(stage: Stage, config: MMTExperiment) -> None:
    """MMT event codes of every ingested dataset, prepared by the profile's rules."""
    for key in ingested(stage, config.datasets):
        stage.run("mmt_codes_job", key, {"mmt_codes": {"config": {"profile": config.profile}}})


def mmt_train_and_evaluate(stage: Stage, config: MMTExperiment) -> None:
    """MMT trained on the multi-part collections with codes, samples in the three modes, evaluation."""
    encoded = stage.ended_datasets("mmt_codes_job", config.datasets, ok=True)
    train_on = [d for d in config.datasets if d in MMT_DATASETS and d in encoded]
    ops = {
        "mmt_model": {"config": {"profile": config.profile, "datasets": train_on, "max_steps": config.steps}},
        "mmt_samples": {"config": {"datasets": train_on}},
        "mmt_eval": {"config": {"datasets": train_on}},
    }
    stage.run("mmt_train_and_evaluate", ops=ops)


def part_notes(stage: Stage, config: InstrumentationExperiment) -> None:
    """Part-labelled downmixes of every ingested dataset."""
    for key in ingested(stage, config.datasets):
        stage.run("part_notes_job", key)


def part_separation_models(stage: Stage, config: InstrumentationExperiment) -> None:
    """One part-separation model per architecture."""
    train = {"profile": config.profile, "datasets": config.datasets, "max_steps": config.steps}
    for arch in config.archs:
        stage.run("part_separation_train", arch, {"part_separation_model": {"config": train}})


def part_separation_eval(stage: Stage, config: InstrumentationExperiment) -> None:
    """Table 4.2 against the baselines, the champion, and example arrangements."""
    ops = {"part_separation_eval": {"config": {"datasets": config.datasets}},
           "instrumentation": {"config": {"datasets": config.datasets}}}  # fmt: skip
    stage.run("instrumentation_eval", ops=ops)


# The Deep Performer.


def recordings(stage: Stage, config: PerformanceExperiment) -> None:
    """The manifest's recordings, one `recordings` partition each (the release is downloaded when asked for)."""
    stage.run("violin_recordings_job", ops={"recordings": {"config": {"manifest": config.manifest, "download": True}}})


def violin_data(stage: Stage, config: PerformanceExperiment) -> None:
    """Every recording of the manifest from audio and score to aligned clips."""
    import pyarrow.compute as pc

    from storage import shards
    from storage.io_manager import UNPARTITIONED

    if not stage.ended("violin_recordings_job", ok=True):
        return stage.skip("the manifest was not read")
    table = shards.read_table(stage.home.datasets, "recordings", UNPARTITIONED, ["id"], filter=pc.field("manifest") == config.manifest)
    for recording in table.column("id").to_pylist():
        stage.run("violin_data_job", recording, {"alignments": {"config": {"method": config.method}}})


def violin_reject_rate(stage: Stage, config: PerformanceExperiment) -> None:
    """The share of rejected recordings over every partition, against the quality gate."""
    if not stage.ended("violin_recordings_job", ok=True):
        return stage.skip("the manifest was not read")
    stage.run("violin_reject_rate_job")


def performance_train(config: PerformanceExperiment) -> dict:
    return {"config": {"profile": config.profile, "max_steps": config.steps}}


def performance_alignment_model(stage: Stage, config: PerformanceExperiment) -> None:
    """The Deep Performer's alignment model on every recording's clips."""
    stage.run("performance_alignment_train", ops={"performance_alignment_model": performance_train(config)})


def performance_vocoder(stage: Stage, config: PerformanceExperiment) -> None:
    """HiFi-GAN on every recording's clips (vocoder_profile none: Griffin-Lim, nothing to train)."""
    profile = config.vocoder_profile or config.profile
    if profile == "none":
        return stage.skip("vocoder_profile none: Griffin-Lim inverts")
    vocoder = {"config": {"profile": profile, "max_steps": config.steps if profile == config.profile else 0}}
    stage.run("performance_vocoder_train", ops={"performance_vocoder": vocoder})


def performance_synthesis_models(stage: Stage, config: PerformanceExperiment) -> None:
    """The three Table 5.1 synthesis variants."""
    for variant in VARIANT_PARTITIONS.get_partition_keys():
        stage.run("performance_synthesis_train", variant, {"performance_synthesis_model": performance_train(config)})


def performance_eval(stage: Stage, config: PerformanceExperiment) -> None:
    """Mel MSE of the variants, timing and vocoder errors, audio samples; the champions."""
    stage.run("performance_eval_job")


# CLIPSep.


def video_data(stage: Stage, config: VideoSource) -> None:
    """One video batch to 16 kHz audio, 1 fps frames and CLIP embeddings."""
    stage.add_partitions(VIDEO_BATCHES, [config.batch])
    ops = {
        "videos": {"config": {"source": config.source, "per_instrument": config.per_instrument, "seconds": config.seconds}},
        "clip_embeddings": {"config": {"model": config.clip_model}},
    }
    stage.run("video_data_job", config.batch, ops)


def clipsep_models(stage: Stage, config: VideoExperiment) -> None:
    """CLIPSep, CLIPSep-NIT and the PIT baseline (the `methods`) on every video batch."""
    train = {"clipsep_model": {"config": {"profile": config.profile, "max_steps": config.steps}}}
    for method in config.methods:
        stage.run("clipsep_train", method, train)


def clipsep_eval(stage: Stage, config: VideoExperiment) -> None:
    """SDR of the newest models on deterministic test mixtures; the champion."""
    stage.run("clipsep_eval_job", ops={"clipsep_eval": {"config": {"n_mixtures": config.n_mixtures}}})


# CLIPSonic.


def clipsonic_videos(stage: Stage, config: ClipSonicExperiment) -> None:
    """The video batch to CLIP embeddings, unless it is already embedded with the same CLIP."""
    from storage import shards

    embedded = shards.read_manifest(stage.home.datasets, "clip_embeddings", config.batch) is not None
    if embedded:
        models = set(shards.read_table(stage.home.datasets, "clip_embeddings", config.batch, ["model"]).column("model").to_pylist())
        if models == {config.clip_model}:
            return stage.context.log.info(f"{config.batch}: already embedded with {config.clip_model}")
    video_data(stage, config)


def clipsonic_mels(stage: Stage, config: ClipSonicExperiment) -> None:
    """Mel crops of every video batch with their frame embeddings."""
    stage.run("clipsonic_mels_job")


def clipsonic_train(config: ClipSonicExperiment, profile: str | None = None) -> dict:
    return {"config": {"profile": profile or config.profile, "max_steps": config.steps if profile in (None, config.profile) else 0}}


def clipsonic_models(stage: Stage, config: ClipSonicExperiment) -> None:
    """CLIPSonic (iq) and the text-to-audio baselines among the `conditions`; CLAP-TTA needs CLAP weights."""
    for condition in config.conditions:
        if condition == "clap_tta" and not config.clap_model:
            stage.skip("CLAP-TTA needs CLAP weights: pass --clap-model DIR (a folder saved with ClapModel.save_pretrained)")
            continue
        train = clipsonic_train(config)
        train["config"]["clap_model"] = config.clap_model
        stage.run("clipsonic_train", condition, {"clipsonic_model": train})


def clipsonic_prior(stage: Stage, config: ClipSonicExperiment) -> None:
    """CLIPSonic-SD's diffusion prior."""
    stage.run("clipsonic_prior_train", "sd", {"clipsonic_prior": clipsonic_train(config)})


def clipsonic_vocoder(stage: Stage, config: ClipSonicExperiment) -> None:
    """The HiFi-GAN inverting CLIPSonic's mels (vocoder_profile none: Griffin-Lim, nothing to train)."""
    profile = config.vocoder_profile or config.profile
    if profile == "none":
        return stage.skip("vocoder_profile none: Griffin-Lim inverts")
    stage.run("clipsonic_vocoder_train", ops={"clipsonic_vocoder": clipsonic_train(config, profile)})


def clipsonic_domain(stage: Stage, config: ClipSonicExperiment) -> None:
    """The domain classifier the offline metrics use, on the real audio's labels."""
    stage.run("clipsonic_domain_train", ops={"clipsonic_domain_classifier": clipsonic_train(config)})


def clipsonic_eval(stage: Stage, config: ClipSonicExperiment) -> None:
    """Samples of every mode, Table 7.1, Table 7.2 and the guidance sweep; the champions."""
    ops = {
        "clipsonic_samples": {"config": {"per_label": config.per_label, "ddpm_per_label": config.ddpm_per_label,
                                         "sweep_per_label": config.sweep_per_label, "clap_model": config.clap_model}},
        "clipsonic_eval": {"config": {"clap_model": config.clap_model, "vggish_weights": config.vggish_weights}},
    }
    stage.run("clipsonic_eval_job", ops=ops)


muspy_experiment = experiment_job(
    "muspy",
    MuspyExperiment,
    [("datasets", symbolic_datasets, True), ("combined_models", music_lm_combined, False),
     ("perplexity", cross_dataset_perplexity, False)],  # fmt: skip
    "The MusPy cross-dataset experiment: every dataset to its language model, the combined models, "
    "the perplexity matrix.",
)
mmt_experiment = experiment_job(
    "mmt",
    MMTExperiment,
    [("ingest", ingest, True), ("codes", mmt_codes, True), ("train_and_evaluate", mmt_train_and_evaluate, False)],
    "The Multitrack Music Transformer: notes, codes, training, samples in three modes, evaluation.",
)
instrumentation_experiment = experiment_job(
    "instrumentation",
    InstrumentationExperiment,
    [("ingest", ingest, True), ("part_notes", part_notes, True), ("models", part_separation_models, False),
     ("eval", part_separation_eval, False)],  # fmt: skip
    "Automatic instrumentation: part notes, every architecture, Table 4.2 and example arrangements.",
)
performance_experiment = experiment_job(
    "performance",
    PerformanceExperiment,
    [("recordings", recordings, True), ("clips", violin_data, True), ("reject_rate", violin_reject_rate, True),
     ("alignment_model", performance_alignment_model, False), ("vocoder", performance_vocoder, False),
     ("synthesis_models", performance_synthesis_models, False), ("eval", performance_eval, False)],  # fmt: skip
    "The Deep Performer: violin recordings to aligned clips, its models (Table 5.1) and their evaluation.",
)
video_experiment = experiment_job(
    "video",
    VideoExperiment,
    [("data", video_data, True), ("clipsep_models", clipsep_models, False), ("clipsep_eval", clipsep_eval, False)],
    "CLIPSep: a video batch to CLIP embeddings, CLIPSep, CLIPSep-NIT and PIT, and their SDR evaluation.",
)

clipsonic_experiment = experiment_job(
    "clipsonic",
    ClipSonicExperiment,
    [("videos", clipsonic_videos, True), ("mels", clipsonic_mels, True), ("models", clipsonic_models, False),
     ("prior", clipsonic_prior, False), ("vocoder", clipsonic_vocoder, False), ("domain", clipsonic_domain, False),
     ("eval", clipsonic_eval, False)],  # fmt: skip
    "CLIPSonic: a video batch to mel crops, the image-queried model, CLIP-TTA and CLAP-TTA, the prior, the "
    "vocoder, and Table 7.1 with every query mode.",
)

EXPERIMENTS = {  # branch -> its job
    "muspy": muspy_experiment,
    "mmt": mmt_experiment,
    "instrumentation": instrumentation_experiment,
    "performance": performance_experiment,
    "video": video_experiment,
    "clipsonic": clipsonic_experiment,
}
CONFIGS = {  # branch -> its run config
    "muspy": MuspyExperiment,
    "mmt": MMTExperiment,
    "instrumentation": InstrumentationExperiment,
    "performance": PerformanceExperiment,
    "video": VideoExperiment,
    "clipsonic": ClipSonicExperiment,
}
experiments = list(EXPERIMENTS.values())
