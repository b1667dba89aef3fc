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
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.violin import alignment, clips, render, scores, sources
from assets.core.partitions import RECORDINGS
from assets.core.rejects import Reject
from assets.core.synth import RenderError
from assets.core import stages
from assets.core.metadata import manifest_metadata, png_markdown, preview
from assets.core.resources import HomeResource, QualityGates
from assets.core.stages import read_shards, require
from assets.core.tools import soundfont_path
from storage import shards
from storage.io_manager import UNPARTITIONED

GROUP = "violin"
CODE_VERSION = "1"
SAMPLE, RELEASE = "sample", "release"
REJECTING = ("recording_audio", "violin_scores", "score_renders")  # the stages that write rejects
ALIGNERS = {"v1": alignment.align_v1, "v2": alignment.align_v2}
PLOT_SECONDS = 10.0


def with_rejects_specs(asset: str, deps: list[str], description: str) -> list[dg.AssetSpec]:
    return stages.with_rejects_specs(asset, deps, description, GROUP, CODE_VERSION, "recording")


def write_with_rejects(
    home: HomeResource, asset: str, partition: str, table: pa.Table, rejects: list[Reject], metadata: dict
) -> Iterator[dg.MaterializeResult]:
    return stages.write_with_rejects(home, asset, partition, table, rejects, metadata, CODE_VERSION)


def skipped(home: HomeResource, asset: str, partition: str, schema: pa.Schema, reason: str) -> dg.MaterializeResult:
    return stages.skipped(home, asset, partition, schema, reason, CODE_VERSION)

RECORDING_ROWS = pa.schema(
    [
        ("id", pa.string()), ("url", pa.string()), ("path", pa.string()), ("start", pa.float64()),
        ("end", pa.float64()), ("performer", pa.string()), ("work", pa.string()), ("movement", pa.int64()),
        ("title", pa.string()), ("score", pa.string()), ("score_path", pa.string()), ("repeat1", pa.bool_()),
        ("repeat2", pa.bool_()), ("baroque_tuning", pa.bool_()), ("collection", pa.string()),
        ("source_filename", pa.string()), ("license", pa.string()),
        ("published_alignment", pa.string()),  # the dataset's own alignment CSV, when the manifest ships one
        ("manifest", pa.string()),  # the `manifest` config that added the row
    ]
)
AUDIO = pa.schema(
    [
        ("id", pa.string()), ("performer", pa.string()), ("work", pa.string()), ("movement", pa.int64()),
        ("attribution", pa.string()), ("seconds", pa.float64()), ("sample_rate", pa.int32()),
        ("audio", pa.binary()),  # float32 mono samples
    ]
)
NOTES = pa.schema([("recording", pa.string()), *((c, pa.int64()) for c in scores.NOTE_COLUMNS)])
RENDERS = pa.schema(
    [
        ("id", pa.string()), ("qpm", pa.float64()), ("transpose", pa.int32()), ("soundfont", pa.string()),
        ("sample_rate", pa.int32()), ("audio", pa.binary()),  # float32 mono samples
    ]
)
ALIGNED = pa.schema(
    [
        ("recording", pa.string()), ("method", pa.string()), *((c, pa.int64()) for c in scores.NOTE_COLUMNS),
        ("start", pa.float64()), ("end", pa.float64()),  # seconds into the recording slice
    ]
)


def recording_of(home: HomeResource, recording_id: str) -> tuple[sources.Recording, str | None]:
    """The partition's manifest row and its published alignment CSV, if any."""
    found = read_shards(home, "recordings", UNPARTITIONED).filter(pc.field("id") == recording_id)
    if found.num_rows == 0:
        raise dg.Failure(f"recording {recording_id!r} is in no manifest read yet: materialize `recordings` with it")
    row = found.to_pylist()[0]
    published = row.pop("published_alignment")
    row.pop("manifest")
    return sources.Recording(**row), published


def skip_reason(
    home: HomeResource, partition: str, inputs: dict[str, pa.Table], stages: tuple[str, ...] = REJECTING
) -> str | None:
    """Why this recording has nothing to work on here (the rejects of the earlier ``stages``), or None."""
    empty = [name for name, table in inputs.items() if table.num_rows == 0]
    if not empty:
        return None
    root = home.home.datasets
    causes = [
        f"{r['stage']}: {r['error_type']}: {r['message']}"
        for stage in stages
        if shards.read_manifest(root, f"{stage}_rejects", partition) is not None
        for r in shards.read_table(root, f"{stage}_rejects", partition).to_pylist()
    ]
    return f"no {' or '.join(empty)} for this recording ({'; '.join(causes) or 'empty upstream'})"


def samples(table: pa.Table) -> np.ndarray:
    return np.frombuffer(table.column("audio")[0].as_py(), dtype=np.float32)


def note_array(table: pa.Table) -> np.ndarray:
    return np.column_stack([table.column(c).to_numpy() for c in scores.NOTE_COLUMNS]).astype(np.int64)





class RecordingsConfig(dg.Config):
    """`sample`: the shared three-movement sample (offline); `release`: the full Bach Violin Dataset
    under <home>/raw/bach-violin; otherwise the path of an info.csv in the dataset's layout
    (audio.csv beside it, audio in audio/, scores in scores/, published alignments in alignments/)."""

    manifest: str = SAMPLE
    download: bool = False  # fetch the release when it is not unpacked yet


def read_recordings(config: RecordingsConfig, home: HomeResource) -> tuple[list[sources.Recording], Path]:
    """The manifest's recordings and the folder holding its info.csv."""
    if config.manifest == SAMPLE:
        return sources.sample_manifest(), sources.shared_data_dir() / sources.SAMPLE_NAME
    if config.manifest == RELEASE:
        root = Path(home.home.raw) / sources.DATASET
        found = sources.bach_violin_release(root, download=config.download)
        return found, sources.release_dir(root)
    info = Path(config.manifest)
    if not info.is_file():
        raise dg.Failure(f"manifest {config.manifest!r} is not {SAMPLE!r}, {RELEASE!r} or an info.csv file")
    folder = info.parent
    return sources.read_manifest(info, folder / "audio.csv", folder / "audio", folder / "scores"), folder


def published_alignment(folder: Path, recording: sources.Recording) -> str | None:
    name = f"{recording.id}.csv"
    found = [p for p in (folder / "alignments" / name, folder / "alignments" / recording.collection / name) if p.is_file()]
    return str(found[0]) if found else None


@dg.asset(group_name=GROUP, io_manager_key="shard_io", code_version=CODE_VERSION)
def recordings(context: dg.AssetExecutionContext, config: RecordingsConfig, home: HomeResource) -> pa.Table:
    """Every recording read so far, one row per movement; each manifest adds (or updates) its rows and
    one `recordings` partition per recording, so a partition always finds its row."""
    found, folder = read_recordings(config, home)
    rows = [asdict(r) | {"published_alignment": published_alignment(folder, r), "manifest": config.manifest} for r in found]
    new = pa.Table.from_pylist(rows, schema=RECORDING_ROWS)
    root = home.home.datasets
    if shards.read_manifest(root, "recordings", UNPARTITIONED) is not None:
        kept = shards.read_table(root, "recordings", UNPARTITIONED)
        kept = kept.filter(pc.invert(pc.is_in(kept.column("id"), new.column("id"))))
        new = pa.concat_tables([kept, new])
    table = new.sort_by("id")
    known = set(context.instance.get_dynamic_partitions(RECORDINGS.name))
    added = [r.id for r in found if r.id not in known]
    context.instance.add_dynamic_partitions(RECORDINGS.name, added)
    context.add_output_metadata(
        {
            "manifest": config.manifest,
            "in_manifest": len(found),
            "partitions_added": len(added),
            "local_audio": sum(r.path is not None for r in found),
            "with_published_alignment": sum(r["published_alignment"] is not None for r in rows),
            "preview": preview(table.select(["id", "performer", "work", "movement", "start", "end", "manifest"])),
        }
    )
    return table


class AudioConfig(dg.Config):
    retries: int = 3
    timeout_s: float = 30.0


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
        [recording], Path(home.home.raw) / sources.DATASET, retries=config.retries, timeout=config.timeout_s
    )
    rows = []
    if not rejects:
        try:
            audio = sources.load_slice(paths[recording.id], recording.start, recording.end)
            rows.append(
                {
                    "id": recording.id, "performer": recording.performer, "work": recording.work,
                    "movement": recording.movement, "attribution": recording.attribution, "seconds": recording.seconds,
                    "sample_rate": sources.SAMPLE_RATE, "audio": audio.tobytes(),
                }
            )
        except ValueError as exc:  # AudioError subclasses, and a manifest slice that is empty
            rejects.append(sources.reject(recording, "slice", exc))
    table = pa.Table.from_pylist(rows, schema=AUDIO)
    source = str(paths.get(recording.id) or recording.url)
    yield from write_with_rejects(
        home, "recording_audio", context.partition_key, table, rejects,
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
    rejects, table = [], NOTES.empty_table()
    try:
        notes = scores.score_notes(recording.score_path or recording.score, recording.repeat1, recording.repeat2)
        table = pa.table({"recording": [recording.id] * len(notes), **dict(zip(scores.NOTE_COLUMNS, notes.T))}, schema=NOTES)
    except scores.ScoreError as exc:
        rejects.append(sources.reject(recording, "score", exc))
    yield from write_with_rejects(
        home, "violin_scores", context.partition_key, table, rejects,
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
    reason = skip_reason(home, partition, {"violin_scores": notes_table}, ("violin_scores",))
    rejects, table, metadata = [], RENDERS.empty_table(), {}
    if reason:
        metadata["skipped"] = reason
    else:
        notes, transpose = note_array(notes_table), -1 if recording.baroque_tuning else 0
        wav = Path(home.home.cache) / "renders" / f"{partition}.wav"
        try:
            qpm = render.tempo_for(notes, recording.seconds)
            render.check_length(notes, qpm, recording.seconds)
            audio = alignment.render_score(notes, qpm, soundfont_path(), wav, transpose=transpose)
            table = pa.Table.from_pylist(
                [{"id": recording.id, "qpm": qpm, "transpose": transpose, "soundfont": soundfont_path(),
                  "sample_rate": sources.SAMPLE_RATE, "audio": audio.tobytes()}],
                schema=RENDERS,
            )
            metadata = {"qpm": qpm, "wav": dg.MetadataValue.path(str(wav))}
        except (render.LengthMismatch, RenderError) as exc:
            rejects.append(sources.reject(recording, "render", exc))
    yield from write_with_rejects(home, "score_renders", partition, table, rejects, metadata)


class AlignmentConfig(dg.Config):
    method: str = "v2"  # "v1": the published method (CQT, full DTW, 32 ms); "v2": multiscale DTW at 16 ms


@dg.asset(partitions_def=RECORDINGS, deps=["recording_audio", "score_renders"], group_name=GROUP, code_version=CODE_VERSION)
def alignments(context: dg.AssetExecutionContext, config: AlignmentConfig, home: HomeResource) -> dg.MaterializeResult:
    """Start and end of every score note in the recording by DTW against the rendering; compared with
    the dataset's published alignment when there is one, and drawn as in Figure 5.3."""
    if config.method not in ALIGNERS:
        raise dg.Failure(f"unknown alignment method {config.method!r}: use one of {sorted(ALIGNERS)}")
    partition = context.partition_key
    _, published = recording_of(home, partition)
    audio_table = read_shards(home, "recording_audio", partition)
    render_table = read_shards(home, "score_renders", partition)
    reason = skip_reason(home, partition, {"recording_audio": audio_table, "score_renders": render_table})
    if reason:
        return skipped(home, "alignments", partition, ALIGNED, reason)
    audio, rendering = samples(audio_table), samples(render_table)
    notes = note_array(read_shards(home, "violin_scores", partition))
    qpm = render_table.column("qpm")[0].as_py()
    score_seconds = notes[:, :2] * 60.0 / (qpm * scores.RESOLUTION)
    starts, ends, _ = ALIGNERS[config.method](audio, rendering, score_seconds[:, 0], score_seconds[:, 1])
    table = pa.table(
        {"recording": [partition] * len(notes), "method": [config.method] * len(notes),
         **dict(zip(scores.NOTE_COLUMNS, notes.T)), "start": starts, "end": ends},
        schema=ALIGNED,
    )
    manifest = shards.write_table(home.home.datasets, "alignments", partition, table, code_version=CODE_VERSION)
    window = (float(np.floor(starts.min())), float(np.floor(starts.min())) + PLOT_SECONDS)
    spectrogram = alignment.cqt_db(audio[: int(window[1] * sources.SAMPLE_RATE)])
    title = f"{partition} ({config.method})"
    png = alignment.plot_alignment(spectrogram, starts, ends, notes[:, 2], title=title, seconds=window)
    plot = Path(home.home.cache) / "plots" / "alignments" / f"{partition}.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot.write_bytes(png)
    agreement = {}
    if published is not None:
        reference = alignment.read_alignment_csv(published)
        if len(reference) == len(starts):
            agreement = {f"published_{k}": v for k, v in alignment.onset_agreement(starts, reference[:, 0]).items()}
        else:
            context.log.warning(f"{published} has {len(reference)} notes, the score {len(starts)}: not compared")
    return dg.MaterializeResult(
        metadata={
            **manifest_metadata(manifest),
            "method": config.method,
            "notes": len(notes),
            **agreement,
            "figure": dg.MetadataValue.md(png_markdown(f"{partition} aligned", png)),
            "plot": dg.MetadataValue.path(str(plot)),
        }
    )


class ClipsConfig(dg.Config):
    valid_share: float = 0.1
    seed: int = 0


@dg.asset(partitions_def=RECORDINGS, deps=["recording_audio", "alignments"], group_name=GROUP, code_version=CODE_VERSION)
def performance_clips(context: dg.AssetExecutionContext, config: ClipsConfig, home: HomeResource) -> dg.MaterializeResult:
    """Training clips of the recording (audio, log-mel and the notes aligned to it) with a train/valid split."""
    partition = context.partition_key
    recording, _ = recording_of(home, partition)
    audio_table, aligned = read_shards(home, "recording_audio", partition), read_shards(home, "alignments", partition)
    reason = skip_reason(home, partition, {"recording_audio": audio_table, "alignments": aligned})
    if reason:
        return skipped(home, "performance_clips", partition, clips.CLIPS, reason)
    qpm = read_shards(home, "score_renders", partition).column("qpm")[0].as_py()
    rows = clips.clip_rows(
        partition, samples(audio_table), note_array(aligned), aligned.column("start").to_numpy(),
        aligned.column("end").to_numpy(), recording.performer, qpm, valid_share=config.valid_share, seed=config.seed,
    )
    table = pa.Table.from_pylist(rows, schema=clips.CLIPS)
    manifest = shards.write_table(home.home.datasets, "performance_clips", partition, table, code_version=CODE_VERSION)
    splits = {s["values"]: s["counts"] for s in table.column("split").value_counts().to_pylist()}
    metadata = {**manifest_metadata(manifest), "clips": len(rows), "splits": dg.MetadataValue.json(splits)}
    if rows:
        first = clips.to_clips(table.slice(0, 1), clips.performer_vocabulary(table))[0]
        png = clips.clip_preview_png(first, f"{partition} clip 0")
        metadata["preview"] = dg.MetadataValue.md(png_markdown("first clip", png))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset="performance_clips", blocking=True, additional_deps=[f"{s}_rejects" for s in REJECTING])
def violin_reject_rate(home: HomeResource, quality: QualityGates) -> dg.AssetCheckResult:
    """Share of the processed recordings rejected at any stage, over every partition: one recording is
    all or nothing, so a per-partition rate could only fail every bad recording's run."""
    root = home.home.datasets
    processed = shards.list_partitions(root, "recording_audio")
    rejected: dict[str, str] = {}
    for stage in REJECTING:
        for partition in shards.list_partitions(root, f"{stage}_rejects"):
            for row in shards.read_table(root, f"{stage}_rejects", partition).to_pylist():
                rejected.setdefault(row["item"], f"{row['stage']}: {row['error_type']}")
    rate = len(rejected) / max(1, len(processed))
    return dg.AssetCheckResult(
        passed=rate <= quality.max_reject_rate,
        metadata={
            "reject_rate": rate, "threshold": quality.max_reject_rate, "recordings": len(processed),
            "rejected": dg.MetadataValue.json(rejected),
        },
    )


assets = [recordings, recording_audio, violin_scores, score_renders, alignments, performance_clips]
asset_checks = [violin_reject_rate]
