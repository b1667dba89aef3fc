"""Which recordings a `recordings` manifest names: the shared sample, the full release, or an info.csv."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Published:
    """A recording's published alignment CSV, if found, and every place it was looked for, in order."""

    path: str | None
    searched: tuple[str, ...]

    def describe(self) -> str:
        """The path, or which places hold none: a comparison that did not happen says why."""
        return self.path or f"none found (searched: {', '.join(self.searched)})"


def alignment_candidates(folder: Path, recording: Recording) -> list[Path]:
    """Where the release layout may keep a recording's alignment, nearest first: ``alignments/``
    flat or by collection, beside info.csv, then in the folder one and two levels up (the release
    root, when info.csv sits in a subfolder of it, as ``release_dir`` allows)."""
    name, folder = f"{recording.id}.csv", folder.absolute()
    bases = dict.fromkeys([folder, *list(folder.parents)[:2]])
    return [base / "alignments" / sub / name for base in bases for sub in (".", recording.collection)]


def published_alignment(folder: Path, recording: Recording) -> Published:
    """The nearest of ``alignment_candidates`` that exists, kept with all of them for when none does."""
    candidates = alignment_candidates(folder, recording)
    found = next((str(p) for p in candidates if p.is_file()), None)
    return Published(found, tuple(map(str, candidates)))


def published_alignments(folder: Path, found: list[Recording]) -> dict[str, Published]:
    return {r.id: published_alignment(folder, r) for r in found}
