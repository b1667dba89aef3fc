"""Dagster wiring of the video data lineage: videos, their 16 kHz audio, 1 fps frames and CLIP embeddings.

A partition of VIDEO_BATCHES is one manifest or one incoming batch of videos, probed and extracted
one video per core at once. Every video that cannot be fetched or decoded (no audio stream, a
corrupt container, no frames, a decoder past its time limit) becomes a row of that stage's rejects
table; the other videos of the batch complete.
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.core import incoming, stages
from assets.core.metadata import manifest_metadata, png_markdown, preview
from assets.core.partitions import VIDEO_BATCHES
from assets.core.resources import HomeResource
from assets.core.stages import read_shards, require
from assets.core.versions import code_version
from assets.videos import batches, media, sources, tables
from assets.videos.batches import SYNTHETIC
from models import clip_embed
from storage import shards
from storage.names import UnsafeName

GROUP = "videos"


def with_rejects_specs(asset: str, deps: list[str], description: str) -> list[dg.AssetSpec]:
    return stages.with_rejects_specs(asset, deps, description, GROUP, "video")



def batch_folder(home: HomeResource, batch: str) -> Path:
    """Where a batch's own files live: claimed incoming videos, or the synthetic set made for it."""
    return batches.batch_folder(home.home.raw, batch)


class VideosConfig(dg.Config):
    """`source`: empty for the batch's own folder (what the incoming-videos sensor claims), `synthetic`
    for the generated instrument set, or a path: Baton's manifest CSV, a MUSIC JSON index, a VGGSound
    CSV index or a folder of video files."""

    source: str = ""
    per_instrument: int = 4  # synthetic only
    seconds: float = 10.0  # synthetic only
    seed: int = 0
    retries: int = 3
    timeout_s: float = 30.0  # per socket read
    deadline_s: float = 600.0  # per download, retries included
    max_parallel: int = 4  # downloads at once
    claim: list[incoming.ClaimedFile] = []  # incoming files to move into the batch first (the sensor's claim)


@dg.multi_asset(
    specs=with_rejects_specs("videos", [], "The batch's videos: local file, clip start and length, label, split."),
    partitions_def=VIDEO_BATCHES,
)
def videos(context: dg.AssetExecutionContext, config: VideosConfig, home: HomeResource) -> Iterator[dg.MaterializeResult]:
    """Read the batch's manifest, fetch remote videos with yt-dlp, probe every file; a row whose start or
    duration is not a number, a failed download or a file without an audio stream, without frames or
    with a corrupt container is a reject."""
    require("ffmpeg", *(("fluidsynth", "musescore-general-soundfont-small") if config.source == SYNTHETIC else ()))
    batch = context.partition_key
    drops = str(Path(home.home.incoming) / "videos")
    refused = incoming.claim_step(context, config.claim, drops, batch_folder(home, batch)) if config.claim else []
    try:
        listed = batches.read_source(config.source, batch_folder(home, batch), config.per_instrument, config.seed, config.seconds)
    except (batches.UnknownSource, UnsafeName) as exc:
        raise dg.Failure(str(exc)) from exc
    found, invalid = sources.usable(listed)
    paths, rejects = sources.download(
        found, Path(home.home.raw) / "videos" / "downloads", retries=config.retries, timeout=config.timeout_s,
        deadline=config.deadline_s, max_parallel=config.max_parallel,
    )  # fmt: skip
    rows, unreadable = batches.probe_videos(found, paths, sources.assign_splits(found, config.seed), batch)
    table = pa.Table.from_pylist(rows, schema=tables.VIDEOS)
    metadata = {"source": config.source or str(batch_folder(home, batch)), "in_manifest": len(listed)}
    if rows:
        metadata["preview"] = preview(table.drop_columns(["path"]))
    yield from stages.write_with_rejects(context, home, "videos", table, refused + invalid + rejects + unreadable, metadata)


@dg.multi_asset(
    specs=with_rejects_specs("video_audio", ["videos"], "Each video's clip as 16 kHz mono float32."),
    partitions_def=VIDEO_BATCHES,
)
def video_audio(context: dg.AssetExecutionContext, home: HomeResource) -> Iterator[dg.MaterializeResult]:
    """ffmpeg decodes each clip's first audio stream; a missing, corrupt or too short one is a reject."""
    batch = context.partition_key
    done, rejects = batches.each_video(
        read_shards(home, "videos", batch).to_pylist(), "audio", lambda v: media.extract_audio(v["path"], v["start"], v["duration"])
    )
    table = tables.audio_table(done)
    seconds = float(pc.sum(table.column("seconds")).as_py() or 0.0)
    yield from stages.write_with_rejects(context, home, "video_audio", table, rejects, {"videos": table.num_rows, "seconds": seconds})


class FramesConfig(dg.Config):
    """`frame_sampling`: `exact` keeps the frame on screen at each sampled second; `keyframes` the last
    keyframe before it, decoding keyframes only (much faster on long keyframe intervals, up to one
    interval early)."""

    frame_sampling: media.Sampling = "exact"


@dg.multi_asset(
    specs=with_rejects_specs("video_frames", ["videos"], "1 fps frames, short side to 224 and centre-cropped, as JPEG."),
    partitions_def=VIDEO_BATCHES,
)
def video_frames(context: dg.AssetExecutionContext, config: FramesConfig, home: HomeResource) -> Iterator[dg.MaterializeResult]:
    """One frame a second (bicubic resize of the short side to 224, centre crop), decoded from the keyframe
    before it; a video without frames or with a corrupt container is a reject."""
    batch = context.partition_key
    done, rejects = batches.each_video(
        read_shards(home, "videos", batch).to_pylist(),
        "frames",
        lambda v: media.extract_frames(v["path"], v["start"], v["duration"], sampling=config.frame_sampling),
    )
    table = tables.frames_table(done)
    metadata = {"frames": table.num_rows}
    if table.num_rows:
        first = table.slice(0, 1).to_pylist()[0]
        metadata["first_frame"] = dg.MetadataValue.md(png_markdown(first["video"], first["jpeg"], "image/jpeg"))
    yield from stages.write_with_rejects(context, home, "video_frames", table, rejects, metadata)


class EmbeddingConfig(dg.Config):
    """`model`: a Hugging Face id (read from the local cache) or a folder saved with `save_pretrained`;
    `baton/small-clip` is the built-in, untrained architecture the offline demo and tests use."""

    model: str = clip_embed.DEFAULT_MODEL
    batch_size: int = 64
    precision: str = "bf16"  # autocast dtype on CUDA


@dg.asset(partitions_def=VIDEO_BATCHES, deps=["video_frames"], group_name=GROUP)
def clip_embeddings(context: dg.AssetExecutionContext, config: EmbeddingConfig, home: HomeResource) -> dg.MaterializeResult:
    """The CLIP image embedding (512-d, unit norm) of every frame, batched; fails with instructions when
    the configured weights are not available offline."""
    batch = context.partition_key
    frames = read_shards(home, "video_frames", batch)
    try:
        bundle = clip_embed.load_clip(config.model)
    except clip_embed.ClipWeightsMissing as exc:
        raise dg.Failure(str(exc)) from exc
    embeddings = clip_embed.embed_images(bundle, frames.column("jpeg").to_pylist(), config.batch_size, config.precision)
    table = tables.embeddings_table(frames, embeddings, config.model)
    manifest = shards.write_table(home.home.datasets, "clip_embeddings", batch, table, code_version=code_version(context))
    return dg.MaterializeResult(
        metadata={
            **manifest_metadata(manifest), "model": config.model, "semantic": bundle.semantic,
            "note": "real CLIP weights" if bundle.semantic else "built-in small CLIP, deterministic and NOT semantic",
            "frames": frames.num_rows, "mean_norm": tables.mean_norm(embeddings),
        }
    )  # fmt: skip


assets = [videos, video_audio, video_frames, clip_embeddings]
