"""Dagster wiring of the video data lineage: videos, their 16 kHz audio, 1 fps frames and CLIP embeddings.

A partition of VIDEO_BATCHES is one manifest or one incoming batch of videos. Every video that
cannot be fetched or decoded (no audio stream, a corrupt container, no frames) becomes a row of
that stage's rejects table; the other videos of the batch complete.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.core.partitions import VIDEO_BATCHES
from assets.core.rejects import Reject
from assets.videos import media, sources, synthetic
from models import clip_embed
from assets.core import stages
from assets.core.metadata import manifest_metadata, png_markdown, preview
from assets.core.resources import HomeResource
from assets.core.stages import read_shards, require
from storage import shards

GROUP = "videos"
CODE_VERSION = "1"
SYNTHETIC = "synthetic"
EMBEDDING_DIM = 512

VIDEOS = pa.schema(
    [
        ("id", pa.string()), ("label", pa.string()), ("path", pa.string()), ("start", pa.float64()),
        ("duration", pa.float64()), ("split", pa.string()), ("batch", pa.string()),
    ]
)  # fmt: skip
AUDIO = pa.schema(
    [
        ("id", pa.string()), ("label", pa.string()), ("split", pa.string()), ("sample_rate", pa.int32()),
        ("seconds", pa.float64()), ("audio", pa.binary()),  # float32 mono samples
    ]
)  # fmt: skip
FRAMES = pa.schema([("video", pa.string()), ("timestamp", pa.float64()), ("jpeg", pa.binary())])
EMBEDDINGS = pa.schema(
    [
        ("video", pa.string()), ("timestamp", pa.float64()), ("embedding", pa.list_(pa.float32(), EMBEDDING_DIM)),
        ("model", pa.string()),
    ]
)  # fmt: skip


def with_rejects_specs(asset: str, deps: list[str], description: str) -> list[dg.AssetSpec]:
    return stages.with_rejects_specs(asset, deps, description, GROUP, CODE_VERSION, "video")


def write_with_rejects(
    home: HomeResource, asset: str, partition: str, table: pa.Table, rejects: list[Reject], metadata: dict
) -> Iterator[dg.MaterializeResult]:
    return stages.write_with_rejects(home, asset, partition, table, rejects, metadata, CODE_VERSION)


def batch_folder(home: HomeResource, batch: str) -> Path:
    """Where a batch's own files live: claimed incoming videos, or the synthetic set made for it."""
    return Path(home.home.raw) / "videos" / "batches" / batch


class VideosConfig(dg.Config):
    """`source`: empty for the batch's own folder (what the incoming-videos sensor claims), `synthetic`
    for the generated instrument set, or a path: Baton's manifest CSV, a MUSIC JSON index, a VGGSound
    CSV index or a folder of video files."""

    source: str = ""
    per_instrument: int = 4  # synthetic only
    seconds: float = 10.0  # synthetic only
    seed: int = 0
    retries: int = 3
    timeout_s: float = 30.0


def read_source(config: VideosConfig, home: HomeResource, batch: str) -> list[sources.Video]:
    folder = batch_folder(home, batch)
    if config.source == SYNTHETIC:
        require("ffmpeg", "fluidsynth", "musescore-general-soundfont-small")
        if not (folder / "manifest.csv").is_file():
            synthetic.make_dataset(folder, config.per_instrument, config.seed, seconds=config.seconds)
        return sources.read_manifest(folder / "manifest.csv")
    path = Path(config.source) if config.source else folder
    if path.is_dir():
        return sources.read_manifest(path / "manifest.csv") if (path / "manifest.csv").is_file() else sources.local_folder(path)
    if path.suffix == ".json":
        return sources.read_music_index(path)
    if path.suffix == ".csv":
        return sources.read_manifest(path) if sources.has_header(path) else sources.read_vggsound_index(path)
    raise dg.Failure(f"video source {str(path)!r} is not {SYNTHETIC!r}, a folder, a manifest CSV or an index")


@dg.multi_asset(
    specs=with_rejects_specs("videos", [], "The batch's videos: local file, clip start and length, label, split."),
    partitions_def=VIDEO_BATCHES,
)
def videos(context: dg.AssetExecutionContext, config: VideosConfig, home: HomeResource) -> Iterator[dg.MaterializeResult]:
    """Read the batch's manifest, fetch remote videos with yt-dlp, probe every file; a failed download or
    a file without an audio stream, without frames or with a corrupt container is a reject."""
    require("ffmpeg")
    batch = context.partition_key
    found = read_source(config, home, batch)
    paths, rejects = sources.download(
        found, Path(home.home.raw) / "videos" / "downloads", retries=config.retries, timeout=config.timeout_s
    )
    rows, splits = [], sources.assign_splits(found, config.seed)
    for video in found:
        if video.id not in paths:
            continue
        try:
            info = media.probe(paths[video.id])
        except media.VideoError as exc:
            rejects.append(sources.reject(video, "probe", exc))
            continue
        duration = video.duration if video.duration is not None else max(info.duration - video.start, 0.0)
        rows.append(
            {
                "id": video.id, "label": video.label, "path": str(paths[video.id]), "start": video.start,
                "duration": duration, "split": splits[video.id], "batch": batch,
            }
        )  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=VIDEOS)
    metadata = {"source": config.source or str(batch_folder(home, batch)), "in_manifest": len(found)}
    if rows:
        metadata["preview"] = preview(table.drop_columns(["path"]))
    yield from write_with_rejects(home, "videos", batch, table, rejects, metadata)


def each_video(
    home: HomeResource, batch: str, stage: str, extract: Callable[[dict], Any]
) -> tuple[list[tuple[dict, Any]], list[Reject]]:
    """(video row, ``extract(row)``) for every video of the batch; a VideoError is that video's reject."""
    done, rejects = [], []
    for video in read_shards(home, "videos", batch).to_pylist():
        try:
            done.append((video, extract(video)))
        except media.VideoError as exc:
            rejects.append(Reject(sources.DATASET, video["id"], stage, type(exc).__name__, str(exc)))
    return done, rejects


@dg.multi_asset(
    specs=with_rejects_specs("video_audio", ["videos"], "Each video's clip as 16 kHz mono float32."),
    partitions_def=VIDEO_BATCHES,
)
def video_audio(context: dg.AssetExecutionContext, home: HomeResource) -> Iterator[dg.MaterializeResult]:
    """ffmpeg decodes each clip's first audio stream; a missing, corrupt or too short one is a reject."""
    batch = context.partition_key
    done, rejects = each_video(home, batch, "audio", lambda v: media.extract_audio(v["path"], v["start"], v["duration"]))
    rows = [
        {
            "id": video["id"], "label": video["label"], "split": video["split"], "sample_rate": media.SAMPLE_RATE,
            "seconds": len(audio) / media.SAMPLE_RATE, "audio": audio.tobytes(),
        }
        for video, audio in done
    ]  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=AUDIO)
    seconds = float(pc.sum(table.column("seconds")).as_py() or 0.0)
    yield from write_with_rejects(home, "video_audio", batch, table, rejects, {"videos": len(rows), "seconds": seconds})


@dg.multi_asset(
    specs=with_rejects_specs("video_frames", ["videos"], "1 fps frames, short side to 224 and centre-cropped, as JPEG."),
    partitions_def=VIDEO_BATCHES,
)
def video_frames(context: dg.AssetExecutionContext, home: HomeResource) -> Iterator[dg.MaterializeResult]:
    """ffmpeg samples one frame a second (bicubic resize of the short side to 224, centre crop); a video
    without frames or with a corrupt container is a reject."""
    batch = context.partition_key
    done, rejects = each_video(home, batch, "frames", lambda v: media.extract_frames(v["path"], v["start"], v["duration"]))
    rows = [{"video": video["id"], "timestamp": t, "jpeg": jpeg} for video, frames in done for t, jpeg in frames]
    table = pa.Table.from_pylist(rows, schema=FRAMES)
    metadata = {"frames": len(rows)}
    if rows:
        metadata["first_frame"] = dg.MetadataValue.md(png_markdown(rows[0]["video"], rows[0]["jpeg"], "image/jpeg"))
    yield from write_with_rejects(home, "video_frames", batch, table, rejects, metadata)


class EmbeddingConfig(dg.Config):
    """`model`: a Hugging Face id (read from the local cache) or a folder saved with `save_pretrained`;
    `baton/small-clip` is the built-in, untrained architecture the offline demo and tests use."""

    model: str = clip_embed.DEFAULT_MODEL
    batch_size: int = 64
    precision: str = "bf16"  # autocast dtype on CUDA


@dg.asset(partitions_def=VIDEO_BATCHES, deps=["video_frames"], group_name=GROUP, code_version=CODE_VERSION)
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
    table = pa.table(
        {
            "video": frames.column("video"), "timestamp": frames.column("timestamp"),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embeddings.ravel(), pa.float32()), EMBEDDING_DIM),
            "model": [config.model] * frames.num_rows,
        },
        schema=EMBEDDINGS,
    )  # fmt: skip
    manifest = shards.write_table(home.home.datasets, "clip_embeddings", batch, table, code_version=CODE_VERSION)
    return dg.MaterializeResult(
        metadata={
            **manifest_metadata(manifest), "model": config.model, "semantic": bundle.semantic,
            "note": "real CLIP weights" if bundle.semantic else "built-in small CLIP, deterministic and NOT semantic",
            "frames": frames.num_rows, "mean_norm": float(np.linalg.norm(embeddings, axis=1).mean()) if len(embeddings) else 0.0,
        }
    )  # fmt: skip


assets = [videos, video_audio, video_frames, clip_embeddings]
