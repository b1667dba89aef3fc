"""Asset jobs: one per stage of each lineage branch (the experiments in pipelines.experiments run them)."""

import dagster as dg

from assets.clipsep.defs import METHODS
from assets.clipsonic.defs import CONDITIONS, PRIORS
from assets.core.partitions import DATASETS, RECORDINGS, VIDEO_BATCHES
from assets.cross_dataset.defs import COMBINED
from assets.deep_performer.defs import VARIANT_PARTITIONS
from assets.instrumentation.defs import ARCHS

symbolic_dataset_job = dg.define_asset_job(
    "symbolic_dataset",
    selection=dg.AssetSelection.assets("score_files", "songs", "notes", "notes_rejects", "dataset_stats", "event_sequences", "music_lm"),
    partitions_def=DATASETS,
    description="One dataset from score files to its trained language model.",
)

ingest_job = dg.define_asset_job(
    "ingest_scores_job",
    selection=dg.AssetSelection.assets("score_files", "songs", "notes", "notes_rejects", "dataset_stats", "event_sequences"),
    partitions_def=DATASETS,
    description="One dataset from score files to event sequences (what the incoming-scores sensor runs).",
)

score_notes_job = dg.define_asset_job(
    "score_notes_job",
    selection=dg.AssetSelection.assets("score_files", "songs", "notes", "notes_rejects"),
    partitions_def=DATASETS,
    description="One dataset from score files to songs, notes and rejects (`baton ingest`; MMT and instrumentation start here).",
)

music_lm_retrain_job = dg.define_asset_job(
    "music_lm_retrain",
    selection=dg.AssetSelection.assets("music_lm"),
    partitions_def=DATASETS,
    description="Retrain the per-dataset language models on their current event sequences.",
)

combined_lm_job = dg.define_asset_job(
    "music_lm_combined_job",
    selection=dg.AssetSelection.assets("music_lm_combined"),
    partitions_def=COMBINED,
    description="The all-datasets and stratified-sampling models.",
)

cross_dataset_job = dg.define_asset_job(
    "cross_dataset_perplexity_job",
    selection=dg.AssetSelection.assets("cross_dataset_perplexity"),
    description="Score every registered music_lm candidate on every dataset's test split.",
)

mmt_codes_job = dg.define_asset_job(
    "mmt_codes_job",
    selection=dg.AssetSelection.assets("mmt_codes", "mmt_codes_rejects"),
    partitions_def=DATASETS,
    description="Encode one dataset's notes as Multitrack Music Transformer codes.",
)

mmt_job = dg.define_asset_job(
    "mmt_train_and_evaluate",
    selection=dg.AssetSelection.assets("mmt_model", "mmt_samples", "mmt_eval"),
    description="Train the Multitrack Music Transformer, generate in all three modes, evaluate and promote.",
)

part_notes_job = dg.define_asset_job(
    "part_notes_job",
    selection=dg.AssetSelection.assets("part_notes", "part_notes_rejects"),
    partitions_def=DATASETS,
    description="Extract one dataset's part-labelled downmixes for automatic instrumentation.",
)

part_separation_job = dg.define_asset_job(
    "part_separation_train",
    selection=dg.AssetSelection.assets("part_separation_model"),
    partitions_def=ARCHS,
    description="Train one part-separation architecture (backfill all four for the Table 4.2 comparison).",
)

instrumentation_job = dg.define_asset_job(
    "instrumentation_eval",
    selection=dg.AssetSelection.assets("part_separation_eval", "instrumentation"),
    description="Compare the architectures with the baselines, promote the best, arrange example scores.",
)

violin_recordings_job = dg.define_asset_job(
    "violin_recordings_job",
    selection=dg.AssetSelection.assets("recordings"),
    description="Read a violin manifest and add one `recordings` partition per recording.",
)

violin_data_job = dg.define_asset_job(
    "violin_data_job",
    selection=dg.AssetSelection.assets(
        "recording_audio", "recording_audio_rejects", "violin_scores", "violin_scores_rejects",
        "score_renders", "score_renders_rejects", "alignments", "performance_clips",
    ).without_checks()
    | dg.AssetSelection.checks_for_assets("alignments"),  # non-blocking: flags low-confidence stretches
    partitions_def=RECORDINGS,
    description="One recording from audio and score to aligned training clips; rejects never fail the run.",
)

violin_reject_rate_job = dg.define_asset_job(
    "violin_reject_rate_job",
    selection=dg.AssetSelection.checks_for_assets("performance_clips"),
    description="The share of rejected recordings over every partition, against the quality gate.",
)

performance_alignment_job = dg.define_asset_job(
    "performance_alignment_train",
    selection=dg.AssetSelection.assets("performance_alignment_model"),
    description="Train the Deep Performer's alignment model on every recording's clips.",
)

performance_vocoder_job = dg.define_asset_job(
    "performance_vocoder_train",
    selection=dg.AssetSelection.assets("performance_vocoder"),
    description="Train the HiFi-GAN vocoder on every recording's clips (the paper profile wants a GPU).",
)

performance_synthesis_job = dg.define_asset_job(
    "performance_synthesis_train",
    selection=dg.AssetSelection.assets("performance_synthesis_model"),
    partitions_def=VARIANT_PARTITIONS,
    description="Train one synthesis variant (backfill all three for the Table 5.1 ablation).",
)

performance_eval_job = dg.define_asset_job(
    "performance_eval_job",
    selection=dg.AssetSelection.assets("performance_eval"),
    description="Mel MSE of the variants, timing and vocoder errors, audio samples; promote the champions.",
)

video_data_job = dg.define_asset_job(
    "video_data_job",
    selection=dg.AssetSelection.assets(
        "videos", "videos_rejects", "video_audio", "video_audio_rejects", "video_frames", "video_frames_rejects",
        "clip_embeddings",
    ),
    partitions_def=VIDEO_BATCHES,
    description="One batch of videos to 16 kHz audio, 1 fps frames and CLIP embeddings; bad videos are rejects.",
)

clipsep_job = dg.define_asset_job(
    "clipsep_train",
    selection=dg.AssetSelection.assets("clipsep_model"),
    partitions_def=METHODS,
    description="Train CLIPSep, CLIPSep-NIT or the PIT baseline on every video batch (backfill all three to compare).",
)

clipsep_eval_job = dg.define_asset_job(
    "clipsep_eval_job",
    selection=dg.AssetSelection.assets("clipsep_eval"),
    description="SDR of the newest CLIPSep models on deterministic test mixtures; promote the best.",
)

clipsonic_mels_job = dg.define_asset_job(
    "clipsonic_mels_job",
    selection=dg.AssetSelection.assets("clipsonic_mels"),
    description="2 s log-mel crops of every video batch, each paired with its video's frame embeddings.",
)

clipsonic_job = dg.define_asset_job(
    "clipsonic_train",
    selection=dg.AssetSelection.assets("clipsonic_model"),
    partitions_def=CONDITIONS,
    description="Train CLIPSonic (iq) or a text-to-audio baseline (clip_tta, clap_tta) on the mel crops.",
)

clipsonic_prior_job = dg.define_asset_job(
    "clipsonic_prior_train",
    selection=dg.AssetSelection.assets("clipsonic_prior"),
    partitions_def=PRIORS,
    description="Train CLIPSonic-SD's diffusion prior from label texts to frame embeddings.",
)

clipsonic_vocoder_job = dg.define_asset_job(
    "clipsonic_vocoder_train",
    selection=dg.AssetSelection.assets("clipsonic_vocoder"),
    description="Train the HiFi-GAN that inverts CLIPSonic's mels.",
)

clipsonic_domain_job = dg.define_asset_job(
    "clipsonic_domain_train",
    selection=dg.AssetSelection.assets("clipsonic_domain_classifier"),
    description="Train the audio classifier of the dataset's labels that the offline metrics use.",
)

clipsonic_eval_job = dg.define_asset_job(
    "clipsonic_eval_job",
    selection=dg.AssetSelection.assets("clipsonic_samples", "clipsonic_eval"),
    description="Sample every query mode, score Table 7.1, 7.2 and the guidance sweep; promote the champions.",
)

jobs = [
    symbolic_dataset_job, ingest_job, score_notes_job, music_lm_retrain_job, combined_lm_job, cross_dataset_job,
    mmt_codes_job, mmt_job, part_notes_job, part_separation_job, instrumentation_job,
    violin_recordings_job, violin_data_job, violin_reject_rate_job,
    performance_alignment_job, performance_vocoder_job, performance_synthesis_job, performance_eval_job,
    video_data_job, clipsep_job, clipsep_eval_job,
    clipsonic_mels_job, clipsonic_job, clipsonic_prior_job, clipsonic_vocoder_job, clipsonic_domain_job, clipsonic_eval_job,
]  # fmt: skip
