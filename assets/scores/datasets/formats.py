"""File formats by extension, and the tunes inside ABC files.

ABC collections hold many tunes per file, each opened by an ``X:`` reference
number; every tune is its own score, so listing and reading both split files here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from storage.names import UnsafeName, inside

from .items import ScoreItem

FORMAT_BY_SUFFIX = {
    ".mid": "midi",
    ".midi": "midi",
    ".xml": "musicxml",
    ".musicxml": "musicxml",
    ".mxl": "musicxml",
    ".abc": "abc",
    ".krn": "humdrum",
    ".hrm": "humdrum",
    ".mei": "music21",
}
# An ABC file larger than this is listed as one item without scanning; the reader rejects it by size.
ABC_SCAN_LIMIT = 50_000_000
_REFERENCE = re.compile(r"X:\s*(\d+)")


def format_of(path: str | Path) -> str:
    return FORMAT_BY_SUFFIX.get(Path(path).suffix.lower(), "unknown")


def read_abc_lines(path: str | Path) -> list[str]:
    """ABC text lines; files in the wild are UTF-8 or Latin-1."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.splitlines(keepends=True)


def _tune_starts(lines: list[str]) -> list[tuple[int, int]]:
    """(line index, reference number) of every X: line, keeping the first of repeated numbers."""
    starts, seen = [], set()
    for index, line in enumerate(lines):
        match = _REFERENCE.match(line)
        if match and int(match.group(1)) not in seen:
            seen.add(int(match.group(1)))
            starts.append((index, int(match.group(1))))
    return starts


def abc_numbers(path: str | Path) -> list[int]:
    """Reference numbers of the tunes in an ABC file, in file order."""
    return [number for _, number in _tune_starts(read_abc_lines(path))]


def abc_tune_text(path: str | Path, number: int) -> str:
    """The file header (lines before the first X:) plus the one tune numbered `number`."""
    lines = read_abc_lines(path)
    starts = [index for index, line in enumerate(lines) if _REFERENCE.match(line)]
    for index, found in _tune_starts(lines):
        if found == number:
            end = next((s for s in starts if s > index), len(lines))
            return "".join(lines[: starts[0]] + lines[index:end])
    raise KeyError(f"no tune X:{number} in {path}")


def items_for_file(dataset: str, root: Path, path: Path) -> list[ScoreItem]:
    """The ScoreItems of one file: one per ABC tune, else one for the file (unknown formats included).

    Symlinks are resolved when their target lies inside ``root``; one pointing outside keeps the
    link's own path, which the reader refuses without opening the target.
    """
    item_id = path.relative_to(root).as_posix()
    fmt = format_of(path)
    try:
        path = inside(root, item_id)
    except UnsafeName:
        return [ScoreItem(dataset, item_id, str(path), fmt)]
    numbers = _listable_numbers(path) if fmt == "abc" else []
    if not numbers:
        return [ScoreItem(dataset, item_id, str(path), fmt)]
    return [ScoreItem(dataset, f"{item_id}#X{n}", str(path), fmt, n) for n in numbers]


def _listable_numbers(path: Path) -> list[int]:
    """Tune numbers, or none for files that are unreadable or oversized: they stay one item, so the
    reader records why they fail."""
    try:
        if path.stat().st_size > ABC_SCAN_LIMIT or not os.access(path, os.R_OK):
            return []
        return abc_numbers(path)
    except OSError:
        return []
