"""One batch of videos: where its manifest comes from, which files probe as videos, and a per-video
extraction in which a bad file is that video's reject instead of the batch's failure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assets.core.audio import MediaError
from assets.core.rejects import Reject
from assets.videos import media, sources, synthetic
from storage.names import check_name, inside

SYNTHETIC = "synthetic"


class UnknownSource(ValueError):
    """A `videos` source that is not the synthetic set, a folder, a manifest CSV or an index."""


def batch_folder(raw_dir: str, batch: str) -> Path:
    """Where a batch's own files live: claimed incoming videos, or the synthetic set made for it.
    The batch is a partition key, so UnsafeName unless it is a plain name inside the batches folder."""
    return inside(Path(raw_dir) / "videos" / "batches", check_name(batch, "video batch"))


def read_source(source: str, folder: Path, per_instrument: int, seed: int, seconds: float) -> list[sources.Video]:
    """The batch's videos. ``source`` is empty for the batch's own ``folder``, ``synthetic`` for the
    generated instrument set (made in ``folder`` once), or a path: Baton's manifest CSV, a MUSIC JSON
    index, a VGGSound CSV index or a folder of video files."""
    if source == SYNTHETIC:
        if not (folder / "manifest.csv").is_file():
            synthetic.make_dataset(folder, per_instrument, seed, seconds=seconds)
        return sources.read_manifest(folder / "manifest.csv")
    path = Path(source) if source else folder
    if path.is_dir():
        return sources.read_manifest(path / "manifest.csv") if (path / "manifest.csv").is_file() else sources.local_folder(path)
    if path.suffix == ".json":
        return sources.read_music_index(path)
    if path.suffix == ".csv":
        return sources.read_manifest(path) if sources.has_header(path) else sources.read_vggsound_index(path)
    raise UnknownSource(f"video source {str(path)!r} is not {SYNTHETIC!r}, a folder, a manifest CSV or an index")


def probe_videos(
    found: Sequence[sources.Video], paths: dict[str, Path], splits: dict[str, str], batch: str
) -> tuple[list[dict], list[Reject]]:
    """A ``VIDEOS`` row per fetched video that probes as one (its duration to the file's end when the
    manifest gives none), and a reject per file that does not; videos never fetched are left out."""
    rows, rejects = [], []
    for video in found:
        if video.id not in paths:
            continue
        try:
            info = media.probe(paths[video.id])
        except MediaError as exc:
            rejects.append(sources.reject(video, "probe", exc))
            continue
        duration = video.duration if video.duration is not None else max(info.duration - video.start, 0.0)
        rows.append(
            {
                "id": video.id, "label": video.label, "path": str(paths[video.id]), "start": video.start,
                "duration": duration, "split": splits[video.id], "batch": batch,
            }
        )  # fmt: skip
    return rows, rejects


def each_video(
    videos: list[dict], stage: str, extract: Callable[[dict], Any]
) -> tuple[list[tuple[dict, Any]], list[Reject]]:
    """(video row, ``extract(row)``) for every video; a MediaError is that video's reject."""
    done, rejects = [], []
    for video in videos:
        try:
            done.append((video, extract(video)))
        except MediaError as exc:
            rejects.append(Reject(sources.DATASET, video["id"], stage, type(exc).__name__, str(exc)))
    return done, rejects
