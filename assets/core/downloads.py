"""yt-dlp downloads shared by every lineage branch that fetches media from the web.

Only http(s) URLs reach the network, transient failures are retried with exponential backoff,
permanent ones (a 404) fail at once, and a download archive makes re-runs skip finished files,
so re-materializing a partition never fetches twice.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlparse

import yt_dlp


class UnsupportedURL(ValueError):
    pass


FETCH_ERRORS = (UnsupportedURL, yt_dlp.utils.DownloadError, FileNotFoundError)
"""What ``fetch`` raises for one source that cannot be had; callers turn these into reject rows."""


def check_url(url: str | None) -> str:
    """Only http(s) URLs reach the network; anything else is refused here, before any request."""
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UnsupportedURL(f"only http(s) URLs are downloaded, not {url!r}")
    return url


def reason(error: Exception) -> str:
    """An error's message without the "ERROR: " prefix yt-dlp puts on its own."""
    return str(error).removeprefix("ERROR: ")


class _Quiet:
    """yt-dlp logger that keeps its console quiet; failures surface as DownloadError instead."""

    def debug(self, msg: str) -> None:
        pass

    info = warning = error = debug


def _permanent(error: Exception) -> bool:
    """Client errors other than timeouts and rate limits will not go away by retrying."""
    found = re.search(r"HTTP Error (4\d\d)", str(error))
    return found is not None and found.group(1) not in ("408", "429")


def fetch(
    url: str | None,
    stem: Path,
    archive: Path,
    retries: int,
    backoff: float,
    timeout: float,
    format: str = "bestaudio/best",
) -> Path:
    """Download ``url`` to ``<stem>.<ext>`` in yt-dlp ``format``; returns the file's path.

    A URL already in the download archive is not fetched again: its earlier file is returned,
    or FileNotFoundError raised when that file has since been deleted.
    """
    options = {
        "outtmpl": f"{stem}.%(ext)s",
        "download_archive": str(archive),
        "format": format,
        "noplaylist": True,
        "retries": 0,
        "socket_timeout": timeout,
        "quiet": True,
        "noprogress": True,
        "logger": _Quiet(),
    }
    url = check_url(url)
    for attempt in range(retries + 1):
        try:
            with yt_dlp.YoutubeDL(options) as ydl:
                info = ydl.extract_info(url, download=True)
            break
        except yt_dlp.utils.DownloadError as exc:
            if attempt == retries or _permanent(exc):
                raise
            time.sleep(backoff * 2**attempt)
    done = (info or {}).get("requested_downloads") or []
    if done:
        return Path(done[0]["filepath"])
    kept = sorted(p for p in stem.parent.glob(f"{stem.name}.*") if p.suffix not in (".part", ".ytdl"))
    if not kept:
        raise FileNotFoundError(f"{url} is in the download archive {archive} but {stem}.* is gone")
    return kept[0]
