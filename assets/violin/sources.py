"""Violin recordings: the Bach Violin Dataset manifest, downloads, and 16 kHz mono slices.

A manifest row is one movement: which file holds it (a local file, or a URL to fetch), where the
movement starts and ends in that file, and which score and repeats it plays. Per-item failures
(an unreachable URL, a file that is not audio, a silent or too short recording) raise typed
errors or come back as ``Reject`` rows, so one bad recording never stops a partition.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from assets.core import http
from assets.core.audio import MediaError, decode_audio
from assets.core.downloads import fetch_all, reason
from assets.core.rejects import Reject
from assets.scores.datasets.archives import unzip
from storage.home import REPO_ROOT
from storage.names import UnsafeName, check_name, inside

DATASET = "bach-violin"
SAMPLE_NAME = "bach-violin-sample"
SAMPLE_RATE = 16_000

# The v1.0 release (Dong et al., ICASSP 2022), mirrored on GitHub and Zenodo. No checksum is
# published: with RELEASE_SHA256 None the first download records its digest next to the archive
# and every later download is verified against that record.
RELEASE_FILE = "bach-violin-dataset-v1.0.zip"
RELEASE_URLS = (
    f"https://github.com/salu133445/bach-violin-dataset/releases/download/v1.0/{RELEASE_FILE}",
    f"https://zenodo.org/records/6050245/files/{RELEASE_FILE}?download=1",
)
RELEASE_SHA256: str | None = None

log = logging.getLogger(__name__)


class SilentAudio(MediaError):
    pass


class ReleaseUnavailable(RuntimeError):
    pass


class ChecksumMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class Recording:
    """One movement of one recording, as a row of the dataset's info.csv joined with audio.csv."""

    id: str
    url: str | None
    path: str | None
    start: float
    end: float
    performer: str
    work: str
    movement: int
    title: str
    score: str
    score_path: str | None
    repeat1: bool | None
    repeat2: bool | None
    baroque_tuning: bool
    collection: str
    source_filename: str
    license: str
    invalid: str | None = None  # why the manifest row cannot be used; :func:`usable` makes it a reject

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def attribution(self) -> str:
        """Performer, licence and source site, e.g. "John Garner, CC BY 3.0, musopen.org"."""
        host = (urlparse(self.url).hostname or "") if self.url else ""
        return ", ".join(p for p in (self.performer, self.license, host.removeprefix("www.")) if p)


def reject(recording: Recording, stage: str, error: Exception) -> Reject:
    """The reject row of a recording that failed at ``stage``; the error's type names the failure."""
    return Reject(DATASET, recording.id, stage, type(error).__name__, reason(error))


def usable(recordings: Sequence[Recording]) -> tuple[list[Recording], list[Reject]]:
    """The recordings whose manifest row can be used, and a ``manifest`` reject for each other one."""
    ok = [r for r in recordings if r.invalid is None]
    bad = [Reject(DATASET, r.id, "manifest", "UnsafeName", r.invalid) for r in recordings if r.invalid is not None]
    return ok, bad


def shared_data_dir() -> Path:
    """Read-only shared data: BATON_SHARED_DATA, else ``shared/data`` next to the checkout."""
    return Path(os.environ.get("BATON_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")


def parse_time(text: str) -> float:
    """Clock text as info.csv writes it ("0:04:13"; also "4:13" or "253.5") -> seconds."""
    seconds = 0.0
    for field in text.strip().split(":"):
        seconds = seconds * 60 + float(field)
    return seconds


def _flag(text: str) -> bool | None:
    """info.csv repeat flags: "1" taken, "0" skipped, "-" the movement has no such repeat."""
    return None if text.strip() == "-" else text.strip() == "1"


def _read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _first_file(*candidates: Path) -> str | None:
    return next((str(p) for p in candidates if p.is_file()), None)


# The info.csv columns that name files, folders or partitions, with how a refusal calls them.
NAME_COLUMNS = {
    "filename": "recording id", "collection": "collection", "source_filename": "source file", "work": "work",
    "score_filename": "score",
}  # fmt: skip


def _local_files(
    row: dict[str, str], audio_dir: str | Path | None, score_dir: str | Path | None
) -> tuple[str | None, Path | None, str | None]:
    """The row's audio, collection LICENSE and score where present (None where not); UnsafeName
    when a name is not plain or a file it names resolves outside its folder."""
    for column, what in NAME_COLUMNS.items():
        check_name(row[column], f"{what} ({column})")
    path = license_file = score_path = None
    if audio_dir is not None:
        collection, source = row["collection"], row["source_filename"]
        path = _first_file(inside(audio_dir, collection, source), inside(audio_dir, source))
        found = _first_file(inside(audio_dir, collection, "LICENSE"), inside(audio_dir, "LICENSE"))
        license_file = Path(found) if found else None
    if score_dir is not None:
        name = row["score_filename"] + ".mxl"
        score_path = _first_file(inside(score_dir, row["work"].lower(), name), inside(score_dir, name))
    return path, license_file, score_path


def _versioned_license(name: str, license_file: Path | None) -> str:
    """audio.csv says "CC BY"; the collection's LICENSE file says which version ("CC BY 3.0")."""
    if license_file is None or not name or name == "-":
        return name
    found = re.search(rf"{re.escape(name)} (\d+\.\d+)", license_file.read_text(errors="replace"))
    return f"{name} {found.group(1)}" if found else name


def read_manifest(
    info_csv: str | Path,
    audio_csv: str | Path,
    audio_dir: str | Path | None = None,
    score_dir: str | Path | None = None,
) -> list[Recording]:
    """Recordings from the published info.csv and audio.csv, in info.csv order.

    Audio and scores are looked up in the release layout (``audio/<collection>/<file>``,
    ``scores/<work>/<score>.mxl``) and in a flat one; what is not found stays None (audio then
    comes from the URL). A row whose id, collection, work or file names are not plain names, or
    name a file outside its folder, is kept marked ``invalid``, so it becomes a reject.
    """
    sources = {row["filename"]: row for row in _read_csv(audio_csv)}
    recordings = []
    for row in _read_csv(info_csv):
        source = sources.get(row["source_filename"])
        if source is None:
            raise ValueError(
                f"{info_csv}: {row['filename']} names {row['source_filename']}, which is not in {audio_csv}"
            )
        invalid = None
        try:
            path, license_file, score_path = _local_files(row, audio_dir, score_dir)
        except UnsafeName as exc:
            (path, license_file, score_path), invalid = (None, None, None), str(exc)
        recordings.append(
            Recording(
                id=row["filename"],
                url=source["url"] or None,
                path=path,
                start=parse_time(row["start"]),
                end=parse_time(row["end"]),
                performer=row["violinist_name"],
                work=row["work"],
                movement=int(row["mov"]),
                title=row["movement"],
                score=row["score_filename"],
                score_path=score_path,
                repeat1=_flag(row["repeat1"]),
                repeat2=_flag(row["repeat2"]),
                baroque_tuning=row["baroque_tuning"].strip() == "1",
                collection=row["collection"],
                source_filename=row["source_filename"],
                license=_versioned_license(source["license"], license_file),
                invalid=invalid,
            )
        )
    return recordings


def sample_manifest(shared_dir: str | Path | None = None) -> list[Recording]:
    """The recordings of the shared sample whose audio is present (three John Garner movements)."""
    root = Path(shared_dir or shared_data_dir()) / SAMPLE_NAME
    if not (root / "info.csv").is_file():
        raise FileNotFoundError(f"no Bach Violin Dataset sample at {root} (set BATON_SHARED_DATA)")
    everything = read_manifest(root / "info.csv", root / "audio.csv", root / "audio", root / "scores")
    return [r for r in everything if r.path is not None]


def release_dir(root: Path) -> Path | None:
    """The unpacked release: the folder holding info.csv, at ``root`` or up to two levels below
    (hidden folders, such as an interrupted unpack, excluded)."""
    candidates = [root / "info.csv", *sorted(root.glob("*/info.csv")), *sorted(root.glob("*/*/info.csv"))]
    visible = (p for p in candidates if not any(part.startswith(".") for part in p.relative_to(root).parts))
    return next((p.parent for p in visible if p.is_file()), None)


def _extract(archive: Path, root: Path) -> None:
    """Unpack into a temporary folder first, so an interrupted unpack leaves nothing behind, within
    the dataset fetcher's limits on size, compression ratio, member count and member paths."""
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        unzip(archive, staging)
        for entry in staging.iterdir():
            entry.rename(root / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def bach_violin_release(
    root: str | Path,
    download: bool = False,
    urls: Sequence[str] = RELEASE_URLS,
    sha256: str | None = RELEASE_SHA256,
    timeout: float = 60.0,
    deadline: float = 3600.0,
) -> list[Recording]:
    """The full dataset's manifest (105 movements) from its release unpacked under ``root``.

    Nothing is fetched unless ``download`` is True; then the archive is fetched from the first
    mirror that answers, checked against ``sha256`` (or, when no checksum is known, against the
    digest recorded by the first download) and unpacked. ``timeout`` bounds each socket read and
    ``deadline`` each mirror's whole download.
    """
    root = Path(root)
    data = release_dir(root) if root.is_dir() else None
    if data is None:
        if not download:
            raise FileNotFoundError(
                f"the Bach Violin Dataset is not unpacked under {root}: pass download=True, "
                f"or fetch {RELEASE_FILE} from {urls[0]} and unzip it there"
            )
        root.mkdir(parents=True, exist_ok=True)
        _extract(_download_release(root, urls, sha256, timeout, deadline), root)
        data = release_dir(root)
        if data is None:
            raise ReleaseUnavailable(f"{RELEASE_FILE} unpacked under {root} but holds no info.csv")
    return read_manifest(data / "info.csv", data / "audio.csv", data / "audio", data / "scores")


def _download_release(root: Path, urls: Sequence[str], sha256: str | None, timeout: float, deadline: float) -> Path:
    """The archive from the first mirror that answers, kept only once its checksum holds."""
    archive = root / RELEASE_FILE
    record = root / f"{RELEASE_FILE}.sha256"
    expected = sha256 or (record.read_text().split()[0] if record.is_file() else None)
    unverified = root / f"{RELEASE_FILE}.unverified"
    errors = []
    for url in urls:
        try:
            actual = http.download(url, unverified, timeout=timeout, deadline=deadline)
            break
        except (http.DownloadError, http.UnsupportedURL) as exc:
            errors.append(str(exc))
    else:
        raise ReleaseUnavailable(
            "could not download the Bach Violin Dataset (is this machine offline?) - "
            + "; ".join(errors)
            + f". Fetch {RELEASE_FILE} by hand and unzip it into {root}."
        )
    if expected is not None and actual != expected:
        unverified.unlink()
        raise ChecksumMismatch(f"{RELEASE_FILE} from {url} has sha256 {actual}, expected {expected}")
    if expected is None:
        record.write_text(f"{actual}  {RELEASE_FILE}\n")
        log.warning("no published checksum for %s: recorded sha256 %s in %s", RELEASE_FILE, actual, record)
    unverified.replace(archive)
    return archive


def download(
    recordings: Sequence[Recording],
    raw_dir: str | Path,
    retries: int = 3,
    backoff: float = 2.0,
    timeout: float = 30.0,
    deadline: float = 600.0,
    max_parallel: int = 4,
) -> tuple[dict[str, Path], list[Reject]]:
    """Audio file of each recording: its local file when present, else its URL fetched into ``raw_dir``.

    Movements sharing one URL share one download (``raw_dir/<hash of the URL>.<ext>``), and up to
    ``max_parallel`` URLs are fetched at once, each within ``deadline`` seconds. Returns paths by
    recording id and one reject row per recording that could not be fetched, in manifest order.
    """
    paths: dict[str, Path] = {}
    by_url: dict[str | None, list[Recording]] = {}
    for recording in recordings:
        if recording.path is not None and Path(recording.path).is_file():
            paths[recording.id] = Path(recording.path)
        else:
            by_url.setdefault(recording.url, []).append(recording)
    rejects: list[Reject] = []
    fetched = fetch_all(list(by_url), raw_dir, max_parallel, retries, backoff, timeout, deadline)
    for group, outcome in zip(by_url.values(), fetched, strict=True):
        if isinstance(outcome, Path):
            paths.update((r.id, outcome) for r in group)
        else:
            rejects.extend(reject(r, "download", outcome) for r in group)
    return paths, rejects


def load_slice(
    path: str | Path,
    start: float,
    end: float,
    sample_rate: int = SAMPLE_RATE,
    timeout: float = 300.0,
    silence_rms: float = 1e-4,
    tolerance: float = 0.05,
) -> np.ndarray:
    """Seconds [start, end) of a recording as float32 mono at ``sample_rate``, exactly that long.

    Unreadable, truncated or silent (RMS below ``silence_rms``) audio raises a ``MediaError`` subclass:
    unlike a video's soundtrack, a silent recording cannot be aligned with its score.
    """
    if end <= start:
        raise ValueError(f"empty slice [{start}, {end}) of {path}")
    audio = decode_audio(path, start, end - start, sample_rate, timeout, tolerance)
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if rms < silence_rms:
        raise SilentAudio(f"{path} is silent in [{start:.2f}, {end:.2f}) s (RMS {rms:.1e} < {silence_rms:.0e})")
    return audio
