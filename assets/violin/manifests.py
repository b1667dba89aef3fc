"""Which recordings a `recordings` manifest names: the shared sample, the full release, or an info.csv."""

from __future__ import annotations

from pathlib import Path

from assets.violin import sources
from assets.violin.sources import Recording

SAMPLE, RELEASE = "sample", "release"


class UnknownManifest(ValueError):
    """A manifest that is neither a known name nor an info.csv file."""


def read_recordings(manifest: str, raw_dir: str, download: bool = False) -> tuple[list[Recording], Path]:
    """The manifest's recordings and the folder holding its info.csv (where its alignments live).

    ``sample`` is the shared three-movement sample (offline); ``release`` the Bach Violin Dataset
    under ``raw_dir``, fetched first when ``download``; anything else the path of an info.csv with
    audio.csv beside it, audio in audio/ and scores in scores/.
    """
    if manifest == SAMPLE:
        return sources.sample_manifest(), sources.shared_data_dir() / sources.SAMPLE_NAME
    if manifest == RELEASE:
        root = Path(raw_dir) / sources.DATASET
        found = sources.bach_violin_release(root, download=download)
        return found, sources.release_dir(root)
    info = Path(manifest)
    if not info.is_file():
        raise UnknownManifest(f"manifest {manifest!r} is not {SAMPLE!r}, {RELEASE!r} or an info.csv file")
    folder = info.parent
    return sources.read_manifest(info, folder / "audio.csv", folder / "audio", folder / "scores"), folder


def published_alignment(folder: Path, recording: Recording) -> str | None:
    """The dataset's own alignment CSV of a recording, flat in alignments/ or under its collection."""
    name = f"{recording.id}.csv"
    found = [p for p in (folder / "alignments" / name, folder / "alignments" / recording.collection / name) if p.is_file()]
    return str(found[0]) if found else None


def published_alignments(folder: Path, found: list[Recording]) -> dict[str, str | None]:
    return {r.id: published_alignment(folder, r) for r in found}
