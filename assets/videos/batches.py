"""One batch of videos: where its manifest comes from, which files probe as videos, and a per-video
extraction in which a bad file is that video's reject instead of the batch's failure.

Probing and extraction run one video per core at once. Threads suffice: each video's work happens
outside the interpreter (ffprobe, ffmpeg, or the frame decoder's child process, which also keeps
each video's own time limit), so a thread only waits for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from assets.core.audio import MediaError
from assets.core.rejects import Reject
from assets.videos import media, sources, synthetic
from storage.names import check_name, inside

SYNTHETIC = "synthetic"
T = TypeVar("T")
R = TypeVar("R")


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
    fetched = [video for video in found if video.id in paths]
    rows, rejects = [], []
    for video, info in zip(fetched, in_parallel(lambda v: _probe(paths[v.id]), fetched)):
        if isinstance(info, MediaError):
            rejects.append(sources.reject(video, "probe", info))
            continue
        duration = video.duration if video.duration is not None else max(info.duration - video.start, 0.0)
        rows.append(
            {
                "id": video.id, "label": video.label, "path": str(paths[video.id]), "start": video.start,
                "duration": duration, "split": splits[video.id], "batch": batch,
            }
        )  # fmt: skip
    return rows, rejects


def _probe(path: Path) -> media.MediaInfo | MediaError:
    try:
        return media.probe(path)
    except MediaError as exc:
        return exc


def cores() -> int:
    """The CPU cores this process may run on (its affinity, which a container or taskset narrows)."""
    return len(os.sched_getaffinity(0))


def in_parallel(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None) -> list[R]:
    """``fn`` of every item, ``workers`` (default: one per core) at once, in the order given."""
    with ThreadPoolExecutor(max_workers=max(1, min(workers or cores(), len(items)))) as pool:
        return list(pool.map(fn, items))


def each_video(
    videos: list[dict], stage: str, extract: Callable[[dict], Any], workers: int | None = None
) -> tuple[list[tuple[dict, Any]], list[Reject]]:
    """(video row, ``extract(row)``) for every video, in the given order, ``workers`` videos (default:
    one per core) at once; a MediaError is that video's reject, anything else fails the batch."""

    def one(video: dict) -> Any:
        try:
            return extract(video)
        except MediaError as exc:
            return Reject(sources.DATASET, video["id"], stage, type(exc).__name__, str(exc))

    done, rejects = [], []
    for video, result in zip(videos, in_parallel(one, videos, workers)):
        if isinstance(result, Reject):
            rejects.append(result)
        else:
            done.append((video, result))
    return done, rejects
