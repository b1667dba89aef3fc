"""Crawl hymnal.net the way muspy 0.5.0's HymnalDataset does, with urllib.

hymnal.net has no archive: each hymn is ``<base>/en/hymn/<category>/<n>/f=<type>``.
A category ends after TOLERANCE consecutive numbers that are not MIDI, or when two
HEAD requests for the same number disagree on the size (past the last hymn the
site answers with a random one). Files already on disk are kept, so an interrupted
crawl resumes; ``.complete`` is written when every category is done. Every request goes
through assets.core.http: http(s) only, redirects included, and each file is bounded in
time and size.
"""

from __future__ import annotations

import http.client
import sys
import urllib.error
import urllib.request
from pathlib import Path

from assets.core.http import DownloadError, check_url, download, failure, open_url

from .archives import TIMEOUT_S, dataset_dir, extracted_dir, is_complete, offline_error
from .muspy_sources import CrawlSource

CATEGORIES = (("Classic", "h"), ("New Tunes", "nt"), ("New Songs", "ns"), ("Children", "c"))
TOLERANCE = 10
DEADLINE_S = 120
MAX_MIDI_BYTES = 16 << 20
"""A hymn's MIDI file is a few kB; anything near this is not one."""


def download_hymnal(source: CrawlSource, raw_dir: str | Path, progress: bool = True) -> Path:
    """Fill `<raw_dir>/<name>/extracted/<category>/<n>.mid`; idempotent."""
    check_url(source.base_url)
    name = source.info.name
    out = extracted_dir(raw_dir, name)
    if is_complete(raw_dir, name):
        return out
    for category, key in CATEGORIES:
        folder = out / category
        folder.mkdir(parents=True, exist_ok=True)
        number, misses = 1, 0
        while misses < TOLERANCE:
            target = folder / f"{number}.mid"
            url = f"{source.base_url}/en/hymn/{key}/{number}/f={source.file_type}"
            if not target.exists():
                size = _midi_size(source, url, out)
                if size is None:
                    misses, number = misses + 1, number + 1
                    continue
                if _midi_size(source, url, out) != size:
                    break
                _get(source, url, target, out)
                if progress:
                    print(f"\r{name}: {category} {number}", end="", file=sys.stderr)
            misses, number = 0, number + 1
    (dataset_dir(raw_dir, name) / ".complete").write_text(f"{source.base_url}\n")
    return out


def _midi_size(source: CrawlSource, url: str, out: Path) -> str | None:
    """Content-Length of a MIDI answer, None when the number holds no MIDI file."""
    try:
        with _open(source, urllib.request.Request(url, method="HEAD"), out) as response:
            if response.headers.get_content_type() != "audio/midi":
                return None
            return response.headers.get("Content-Length", "")
    except urllib.error.HTTPError:
        return None


def _get(source: CrawlSource, url: str, target: Path, out: Path) -> None:
    try:
        download(url, target, timeout=TIMEOUT_S, deadline=DEADLINE_S, max_bytes=MAX_MIDI_BYTES)
    except DownloadError as error:
        raise offline_error(source.info.name, error, out) from error


def _open(source: CrawlSource, request: urllib.request.Request, out: Path) -> http.client.HTTPResponse:
    try:
        return open_url(request, TIMEOUT_S)
    except urllib.error.HTTPError:
        raise
    except (OSError, http.client.HTTPException) as error:
        raise offline_error(source.info.name, failure(request.full_url, error), out) from error
