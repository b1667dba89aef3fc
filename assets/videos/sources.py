"""Video manifests (Baton's CSV, the MUSIC and VGGSound indexes, a local folder) and their downloads.

A manifest row is one clip: the file holding it (a local file, or a URL to fetch), where the clip
starts and how long it lasts. Labels ride along for evaluation only; training never reads them.
Rows with an unreadable field and failed downloads come back as ``Reject`` rows, so one bad row or
missing video never stops a partition.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assets.core.downloads import fetch_all, reason
from assets.core.rejects import Reject

DATASET = "video"
VGGSOUND_SECONDS = 10.0
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v"})

# Frames are cut to 224 x 224, so the best combined audio+video format up to 360p (YouTube's
# progressive mp4) loses nothing and keeps downloads small; any combined format when none is.
VIDEO_FORMAT = "best[height<=?360]/best"


@dataclass(frozen=True)
class Video:
    """One clip: seconds [start, start + duration) of a local file or URL (duration None: to the end)."""

    id: str
    url: str | None
    path: str | None
    start: float = 0.0
    duration: float | None = None
    label: str | None = None
    invalid: str | None = None  # why the manifest row cannot be used; :func:`usable` makes it a reject


def _unit(seed: int, key: str) -> float:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big") / 2**64


def split_of(video_id: str, seed: int = 0, valid: float = 0.1, test: float = 0.1) -> str:
    """``train``, ``valid`` or ``test`` from a hash of the id: stable when other videos come and go,
    so a video never moves between splits as batches are added."""
    unit = _unit(seed, video_id)
    return "test" if unit < test else "valid" if unit < test + valid else "train"


def assign_splits(videos: Sequence[Video], seed: int = 0, valid: float = 0.1, test: float = 0.1) -> dict[str, str]:
    """Splits of one batch: unlabelled videos by :func:`split_of`; each label's videos in hash order,
    the first ``test`` share (at least one of three or more) to test and the next ``valid`` share to
    valid, so every label is evaluated however small the batch."""
    splits = {v.id: split_of(v.id, seed, valid, test) for v in videos if v.label is None}
    by_label: dict[str, list[str]] = {}
    for video in videos:
        if video.label is not None:
            by_label.setdefault(video.label, []).append(video.id)
    for ids in by_label.values():
        ordered = sorted(ids, key=lambda i: _unit(seed, i))
        n_test = max(round(len(ordered) * test), 1 if len(ordered) >= 3 else 0)
        n_valid = max(round(len(ordered) * valid), 1 if len(ordered) >= 3 else 0)
        for rank, video_id in enumerate(ordered):
            splits[video_id] = "test" if rank < n_test else "valid" if rank < n_test + n_valid else "train"
    return splits


def has_header(csv_path: str | Path) -> bool:
    """Whether a CSV starts with Baton's header (an ``id`` or ``youtube_id`` column) rather than VGGSound's data."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        first = next(csv.reader(f), [])
    return bool({"id", "youtube_id"} & {c.strip() for c in first})


def youtube_url(youtube_id: str) -> str:
    return f"https://www.youtube.com/watch?v={youtube_id}"


def reject(video: Video, stage: str, error: Exception) -> Reject:
    """The reject row of a video that failed at ``stage``; the error's type names the failure."""
    return Reject(DATASET, video.id, stage, type(error).__name__, reason(error))


def _number(row: dict[str, str], column: str) -> float | None:
    """The row's ``column`` in seconds, None when missing or empty; ValueError naming the column and
    value when it is not a finite number."""
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan  # not a number at all: the same reject as "nan" or "inf"
    if not math.isfinite(value):
        raise ValueError(f"{column} {text!r} is not a number of seconds")
    return value


def _manifest_video(row: dict[str, str], base: Path) -> Video:
    """One manifest row as a video; one whose start or duration does not parse is marked ``invalid``."""
    youtube_id = (row.get("youtube_id") or "").strip()
    path = (row.get("path") or "").strip()
    fields = {
        "id": (row.get("id") or "").strip() or youtube_id,
        "url": (row.get("url") or "").strip() or (youtube_url(youtube_id) if youtube_id else None),
        "path": str(base / path) if path else None,
        "label": (row.get("label") or "").strip() or None,
    }
    try:
        return Video(**fields, start=_number(row, "start") or 0.0, duration=_number(row, "duration"))
    except ValueError as exc:
        return Video(**fields, invalid=str(exc))


def read_manifest(csv_path: str | Path) -> list[Video]:
    """Videos from Baton's CSV: ``id`` (or ``youtube_id``), ``url``, ``path``, ``start``, ``duration``, ``label``.

    Every column but the id may be missing or empty; a YouTube id without a URL becomes its watch
    URL, and relative paths are relative to the CSV's folder. A row whose start or duration is not a
    number is kept, marked ``invalid``, so it becomes a reject rather than failing the batch.
    """
    base = Path(csv_path).parent
    with open(csv_path, newline="", encoding="utf-8") as f:
        videos = [_manifest_video(row, base) for row in csv.DictReader(f)]
    if missing := [i for i, v in enumerate(videos, start=2) if not v.id]:
        raise ValueError(f"{csv_path}: rows {missing} have neither an id nor a youtube_id")
    return videos


def usable(videos: Sequence[Video]) -> tuple[list[Video], list[Reject]]:
    """The videos whose manifest row parsed, and a ``manifest`` reject for each one that did not."""
    ok = [v for v in videos if v.invalid is None]
    bad = [Reject(DATASET, v.id, "manifest", "ValueError", v.invalid) for v in videos if v.invalid is not None]
    return ok, bad


def read_music_index(json_path: str | Path) -> list[Video]:
    """Whole YouTube videos from a MUSIC index (MUSIC_solo_videos.json, MUSIC21_solo_videos.json):
    ``{"videos": {"<instrument>": ["<youtube id>", ...]}}``, labelled with the instrument."""
    index = json.loads(Path(json_path).read_text(encoding="utf-8"))["videos"]
    return [
        Video(id=youtube_id, url=youtube_url(youtube_id), path=None, label=instrument)
        for instrument, ids in index.items()
        for youtube_id in ids
    ]


def read_vggsound_index(csv_path: str | Path) -> list[Video]:
    """Ten-second clips from VGGSound's vggsound.csv (no header; youtube_id, start_seconds, label, split).

    Ids follow the dataset's file names, ``<youtube id>_<start, six digits>``, since one YouTube
    video can hold several clips.
    """
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = [row for row in csv.reader(f) if row]
    return [
        Video(
            id=f"{youtube_id}_{int(start):06d}",
            url=youtube_url(youtube_id),
            path=None,
            start=float(start),
            duration=VGGSOUND_SECONDS,
            label=label,
        )
        for youtube_id, start, label, _split in rows
    ]


def local_folder(path: str | Path) -> list[Video]:
    """One whole, unlabelled video per video file in a folder, named by its file stem."""
    files = sorted(p for p in Path(path).iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    return [Video(id=p.stem, url=None, path=str(p)) for p in files]


def download(
    videos: Sequence[Video],
    raw_dir: str | Path,
    retries: int = 3,
    backoff: float = 2.0,
    timeout: float = 30.0,
    deadline: float = 600.0,
    max_parallel: int = 4,
) -> tuple[dict[str, Path], list[Reject]]:
    """Video file of each clip: its local file when present, else its URL fetched into ``raw_dir``.

    Clips sharing one URL share one download (``raw_dir/<hash of the URL>.<ext>``), and up to
    ``max_parallel`` URLs are fetched at once, each within ``deadline`` seconds. Returns paths by
    video id and one reject row per video that could not be fetched, in manifest order.
    """
    paths: dict[str, Path] = {}
    rejects: list[Reject] = []
    by_url: dict[str | None, list[Video]] = {}
    for video in videos:
        if video.path is not None and Path(video.path).is_file():
            paths[video.id] = Path(video.path)
        elif video.path is not None and video.url is None:
            rejects.append(reject(video, "download", FileNotFoundError(f"{video.path} does not exist")))
        else:
            by_url.setdefault(video.url, []).append(video)
    fetched = fetch_all(
        list(by_url), raw_dir, max_parallel, retries, backoff, timeout, deadline, format=VIDEO_FORMAT
    )
    for group, outcome in zip(by_url.values(), fetched, strict=True):
        if isinstance(outcome, Path):
            paths.update((v.id, outcome) for v in group)
        else:
            rejects.extend(reject(v, "download", outcome) for v in group)
    return paths, rejects
