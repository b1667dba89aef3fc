"""Dagster wiring of the violin data lineage: manifest, audio, scores, renderings, alignments, clips.

Every recording (one movement) is a partition of RECORDINGS, added when the `recordings` asset
reads its manifest. A recording that fails at some stage leaves a row in that stage's rejects
table; the stages after it write an empty shard set and say why in their metadata, so a bad
recording never fails its run and the others complete.
"""

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.core import stages
from assets.core.metadata import manifest_metadata, png_markdown, preview
from assets.core.partitions import RECORDINGS, add_partitions
from assets.core.rejects import reject_rate
from assets.core.resources import HomeResource, QualityGates
from assets.core.stages import read_shards, require
from assets.core.synth import RenderError
from assets.core.tools import soundfont_path
from assets.core.versions import code_version
from assets.violin import alignment, clips, confidence, manifests, rejected, render, scores, sources, tables
from assets.violin.manifests import SAMPLE
from storage import shards
from storage.io_manager import UNPARTITIONED

GROUP = "violin"


def with_rejects_specs(asset: str, deps: list[str], description: str) -> list[dg.AssetSpec]:
    return stages.with_rejects_specs(asset, deps, description, GROUP, "recording")


def recording_of(home: HomeResource, recording_id: str) -> tuple[sources.Recording, manifests.Published]:
    """The partition's manifest row and its published alignment lookup."""
    found = read_shards(home, "recordings", UNPARTITIONED).filter(pc.field("id") == recording_id)
    if found.num_rows == 0:
        raise dg.Failure(f"recording {recording_id!r} is in no manifest read yet: materialize `recordings` with it")
    return tables.recording_from_row(found.to_pylist()[0])


class RecordingsConfig(dg.Config):
    """`sample`: the shared three-movement sample (offline); `release`: the full Bach Violin Dataset
    under <home>/raw/bach-violin; otherwise the path of an info.csv in the dataset's layout
    (audio.csv beside it, audio in audio/, scores in scores/, published alignments in alignments/
    beside it or up to two folders above, as `manifests.alignment_candidates` lists)."""

    manifest: str = SAMPLE
    download: bool = False  # fetch the release when it is not unpacked yet


@dg.asset(group_name=GROUP, io_manager_key="shard_io")
def recordings(context: dg.AssetExecutionContext, config: RecordingsConfig, home: HomeResource) -> pa.Table:
    """Every recording read so far, one row per movement; each manifest adds (or updates) its rows and
    one `recordings` partition per recording, so a partition always finds its row. A row whose names
    are not plain (they name partitions and files) gets neither and is listed under `rejected`."""
    try:
        found, folder = manifests.read_recordings(config.manifest, home.home.raw, config.download)
    except manifests.UnknownManifest as exc:
        raise dg.Failure(str(exc)) from exc
    found, unusable = sources.usable(found)
    published = manifests.published_alignments(folder, found)
    root = home.home.datasets
    kept = shards.read_table(root, "recordings", UNPARTITIONED) if shards.read_manifest(root, "recordings", UNPARTITIONED) else None
    table = tables.merge_recordings(kept, tables.recordings_table(found, published, config.manifest))
    added = add_partitions(context.instance, RECORDINGS, [r.id for r in found])
    context.add_output_metadata(
        {
            "manifest": config.manifest,
            "in_manifest": len(found),
            "partitions_added": len(added),
            "local_audio": sum(r.path is not None for r in found),
            "with_published_alignment": sum(p.path is not None for p in published.values()),
            "rejects": len(unusable),
            "rejected": dg.MetadataValue.json({r.item: r.message for r in unusable}),
            "preview": preview(table.select(["id", "performer", "work", "movement", "start", "end", "manifest"])),
        }
    )
    return table


class AudioConfig(dg.Config):
    retries: int = 3
    timeout_s: float = 30.0  # per socket read
    deadline_s: float = 600.0  # per download, retries included


@dg.multi_asset(
    specs=with_rejects_specs("recording_audio", ["recordings"], "The recording's slice, 16 kHz mono float32."),
    partitions_def=RECORDINGS,
)
def recording_audio(
    context: dg.AssetExecutionContext, config: AudioConfig, home: HomeResource
) -> Iterator[dg.MaterializeResult]:
    """Local file or yt-dlp download, then ffmpeg cuts the movement's slice; a failed download or an
    unreadable, silent or too short file is a reject."""
    require("ffmpeg")
    recording, _ = recording_of(home, context.partition_key)
    paths, rejects = sources.download(
        [recording], Path(home.home.raw) / sources.DATASET, retries=config.retries, timeout=config.timeout_s,
        deadline=config.deadline_s,
    )  # fmt: skip
    table = tables.AUDIO.empty_table()
    if not rejects:
        try:
            table = tables.audio_table(recording, sources.load_slice(paths[recording.id], recording.start, recording.end))
        except ValueError as exc:  # AudioError subclasses, and a manifest slice that is empty
            rejects.append(sources.reject(recording, "slice", exc))
    source = str(paths.get(recording.id) or recording.url)
    yield from stages.write_with_rejects(
        context, home, "recording_audio", table, rejects,
        {"source": source, "seconds": recording.seconds, "attribution": recording.attribution},
    )


@dg.multi_asset(
    specs=with_rejects_specs("violin_scores", ["recordings"], "The score's notes as the recording plays its repeats."),
    partitions_def=RECORDINGS,
)
def violin_scores(context: dg.AssetExecutionContext, home: HomeResource) -> Iterator[dg.MaterializeResult]:
    """Notes of the reference score with the manifest's repeat flags (24 ticks per quarter); a score
    that cannot be read or lacks a repeat the manifest takes is a reject."""
    recording, _ = recording_of(home, context.partition_key)
    rejects, table = [], tables.NOTES.empty_table()
    try:
        notes = scores.score_notes(recording.score_path or recording.score, recording.repeat1, recording.repeat2)
        table = tables.notes_table(recording.id, notes)
    except scores.ScoreError as exc:
        rejects.append(sources.reject(recording, "score", exc))
    yield from stages.write_with_rejects(
        context, home, "violin_scores", table, rejects,
        {"score": recording.score, "repeats": f"{recording.repeat1}, {recording.repeat2}"},
    )


@dg.multi_asset(
    specs=with_rejects_specs("score_renders", ["violin_scores"], "The score rendered at the recording's length."),
    partitions_def=RECORDINGS,
)
def score_renders(context: dg.AssetExecutionContext, home: HomeResource) -> Iterator[dg.MaterializeResult]:
    """FluidSynth and MuseScore General play the notes at the one tempo that makes them last as long
    as the slice; a score whose notes do not match the recording's length is a reject."""
    require("fluidsynth", "musescore-general-soundfont-small")
    partition = context.partition_key
    recording, _ = recording_of(home, partition)
    notes_table = read_shards(home, "violin_scores", partition)
    reason = rejected.skip_reason(home.home.datasets, partition, {"violin_scores": notes_table}, ("violin_scores",))
    rejects, table, metadata = [], tables.RENDERS.empty_table(), {}
    if reason:
        metadata["skipped"] = reason
    else:
        wav = Path(home.home.cache) / "renders" / f"{partition}.wav"
        try:
            qpm, transpose, audio = alignment.rendering_for(
                tables.note_array(notes_table), recording.seconds, recording.baroque_tuning, soundfont_path(), wav
            )
            table = tables.render_table(recording.id, qpm, transpose, soundfont_path(), audio)
            metadata = {"qpm": qpm, "wav": dg.MetadataValue.path(str(wav))}
        except (render.LengthMismatch, RenderError) as exc:
            rejects.append(sources.reject(recording, "render", exc))
    yield from stages.write_with_rejects(context, home, "score_renders", table, rejects, metadata)


class AlignmentConfig(dg.Config):
    method: str = "v2"  # "v1": the published method (CQT, full DTW, 32 ms); "v2": multiscale DTW at 16 ms


CONFIDENCE_CHECK = dg.AssetCheckSpec(
    "alignment_confidence", asset="alignments",
    description=f"Warns of stretches of low-confidence notes ({confidence.RULE}); never a gate.",
)


# can_subset: a job or a UI selection may take the asset without its check
@dg.multi_asset(
    specs=[dg.AssetSpec("alignments", deps=["recording_audio", "score_renders"], group_name=GROUP,
                        description="Start, end and confidence of every score note in the recording.")],
    check_specs=[CONFIDENCE_CHECK], partitions_def=RECORDINGS, can_subset=True,
)
def alignments(
    context: dg.AssetExecutionContext, config: AlignmentConfig, home: HomeResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The aligned notes (``align_recording``), then, when selected, the confidence check on what was stored."""
    yield align_recording(context, config, home)
    if CONFIDENCE_CHECK.key in context.selected_asset_check_keys:
        yield confidence_check(home, context.partition_key)


def align_recording(
    context: dg.AssetExecutionContext, config: AlignmentConfig, home: HomeResource
) -> dg.MaterializeResult:
    """Start, end and confidence of every score note in the recording by DTW against the rendering;
    compared with the dataset's published alignment when there is one (the metadata says where it was
    looked for when there is none), and drawn as in Figure 5.3."""
    if config.method not in alignment.ALIGNERS:
        raise dg.Failure(f"unknown alignment method {config.method!r}: use one of {sorted(alignment.ALIGNERS)}")
    partition = context.partition_key
    _, published = recording_of(home, partition)
    audio_table = read_shards(home, "recording_audio", partition)
    render_table = read_shards(home, "score_renders", partition)
    reason = rejected.skip_reason(home.home.datasets, partition, {"recording_audio": audio_table, "score_renders": render_table})
    if reason:
        return stages.skipped(context, home, "alignments", tables.ALIGNED, reason)
    audio = tables.samples(audio_table)
    notes = tables.note_array(read_shards(home, "violin_scores", partition))
    qpm = render_table.column("qpm")[0].as_py()
    rendering = tables.samples(render_table)
    starts, ends = alignment.align_notes(config.method, audio, rendering, notes, qpm)
    trust = confidence.note_confidence(audio, rendering, starts, ends, notes, qpm)
    table = tables.aligned_table(partition, config.method, notes, starts, ends, trust)
    manifest = shards.write_table(home.home.datasets, "alignments", partition, table, code_version=code_version(context))
    png = alignment.alignment_png(audio, starts, ends, notes[:, 2], title=f"{partition} ({config.method})")
    plot = Path(home.home.cache) / "plots" / "alignments" / f"{partition}.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot.write_bytes(png)
    agreement = {"published_alignment": published.describe()}
    if published.path is not None:
        try:
            compared = alignment.published_agreement(published.path, starts)
            agreement |= {f"published_{k}": v for k, v in compared.items()}
            if config.method != "v1":  # v1 shares the published starts' lag; another method is compared without it
                onsets_s = notes[:, 0] * 60.0 / (qpm * scores.RESOLUTION)
                lag = alignment.published_lag(onsets_s, qpm, len(audio) / sources.SAMPLE_RATE)
                unlagged = alignment.published_agreement(published.path, starts, lag)
                agreement |= {f"published_lag_removed_{k}": v for k, v in unlagged.items()}
        except alignment.NoteCountMismatch as exc:
            context.log.warning(str(exc))
            agreement["published_not_compared"] = str(exc)
    return dg.MaterializeResult(
        metadata={
            **manifest_metadata(manifest),
            "method": config.method,
            "notes": len(notes),
            **confidence.summary(trust, starts, ends),
            **agreement,
            "figure": dg.MetadataValue.md(png_markdown(f"{partition} aligned", png)),
            "plot": dg.MetadataValue.path(str(plot)),
        }
    )


def confidence_check(home: HomeResource, partition: str) -> dg.AssetCheckResult:
    """``CONFIDENCE_CHECK`` on the stored alignment: a warning, since a hard passage or an unusual
    recording can score low where the alignment holds; an empty (skipped) recording passes."""
    aligned = read_shards(home, "alignments", partition)
    starts, ends = aligned.column("start").to_numpy(), aligned.column("end").to_numpy()
    found = confidence.flagged(confidence.low_stretches(aligned.column("confidence").to_numpy(), starts, ends))
    return dg.AssetCheckResult(
        check_name=CONFIDENCE_CHECK.name,
        passed=not found,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "notes": aligned.num_rows,
            "rule": confidence.RULE,
            "low_stretches": len(found),
            "stretches": dg.MetadataValue.json([asdict(s) for s in found]),
        },
    )


class ClipsConfig(dg.Config):
    valid_share: float = 0.1
    seed: int = 0


@dg.asset(partitions_def=RECORDINGS, deps=["recording_audio", "alignments"], group_name=GROUP)
def performance_clips(context: dg.AssetExecutionContext, config: ClipsConfig, home: HomeResource) -> dg.MaterializeResult:
    """Training clips of the recording (audio, log-mel and the notes aligned to it) with a train/valid split."""
    partition = context.partition_key
    recording, _ = recording_of(home, partition)
    audio_table, aligned = read_shards(home, "recording_audio", partition), read_shards(home, "alignments", partition)
    reason = rejected.skip_reason(home.home.datasets, partition, {"recording_audio": audio_table, "alignments": aligned})
    if reason:
        return stages.skipped(context, home, "performance_clips", clips.CLIPS, reason)
    qpm = read_shards(home, "score_renders", partition).column("qpm")[0].as_py()
    rows = clips.clip_rows(
        partition, tables.samples(audio_table), tables.note_array(aligned), aligned.column("start").to_numpy(),
        aligned.column("end").to_numpy(), recording.performer, qpm, valid_share=config.valid_share, seed=config.seed,
    )
    table = pa.Table.from_pylist(rows, schema=clips.CLIPS)
    manifest = shards.write_table(home.home.datasets, "performance_clips", partition, table, code_version=code_version(context))
    metadata = {**manifest_metadata(manifest), "clips": len(rows), "splits": dg.MetadataValue.json(clips.split_counts(table))}
    png = clips.first_clip_png(table, f"{partition} clip 0")
    if png is not None:
        metadata["preview"] = dg.MetadataValue.md(png_markdown("first clip", png))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset="performance_clips", blocking=True, additional_deps=[f"{s}_rejects" for s in rejected.REJECTING])
def violin_reject_rate(home: HomeResource, quality: QualityGates) -> dg.AssetCheckResult:
    """Share of the processed recordings rejected at any stage, over every partition: one recording is
    all or nothing, so a per-partition rate could only fail every bad recording's run."""
    root = home.home.datasets
    processed = shards.list_partitions(root, "recording_audio")
    failed = rejected.rejected_recordings(root)
    rate = reject_rate(len(failed), len(processed))
    return dg.AssetCheckResult(
        passed=rate <= quality.max_reject_rate,
        metadata={
            "reject_rate": rate, "threshold": quality.max_reject_rate, "recordings": len(processed),
            "rejected": dg.MetadataValue.json(failed),
        },
    )


assets = [recordings, recording_audio, violin_scores, score_renders, alignments, performance_clips]
asset_checks = [violin_reject_rate]
