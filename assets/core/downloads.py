"""yt-dlp downloads shared by every lineage branch that fetches media from the web.

Only http(s) URLs reach the network. A download's file is named by a hash of its URL, so no name
comes from the URL and two URLs never share a file; a finished file is never fetched again, so
re-materializing a partition never fetches twice. Each download runs in a child process that is
killed at a total deadline (a server that drips bytes outlives any socket timeout), retries
transient failures with exponential backoff inside it, fails at once on permanent ones (a 404),
and leaves no partial file behind when it fails. Several downloads run at once, bounded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yt_dlp

from assets.core.http import DownloadTimeout, UnsupportedURL, check_url
from assets.core.processes import die_with_parent
from storage.names import hashed_name, inside

PARTIAL_SUFFIXES = frozenset({".part", ".ytdl", ".temp"})
ROOT = Path(__file__).resolve().parents[2]  # where the child process imports this module from


class DownloadCrashed(OSError):
    """The download's process died without saying how the download went."""


FETCH_ERRORS = (UnsupportedURL, yt_dlp.utils.DownloadError, FileNotFoundError, DownloadTimeout, DownloadCrashed)
"""What ``fetch`` raises for one source that cannot be had; callers turn these into reject rows."""


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


def _is_finished(path: Path) -> bool:
    """``<hash>.<ext>`` and nothing more: yt-dlp writes ``<hash>.<ext>.part`` until the file is whole."""
    return path.is_file() and path.name.count(".") == 1 and path.suffix not in PARTIAL_SUFFIXES


def finished(stem: Path) -> Path | None:
    """The complete download at ``<stem>.<ext>``, or None when there is none yet."""
    return next((p for p in sorted(stem.parent.glob(f"{stem.name}.*")) if _is_finished(p)), None)


def remove_partials(stem: Path) -> None:
    """Delete what an unfinished download of ``stem`` left (``.part``, ``.ytdl``, fragments)."""
    for path in stem.parent.glob(f"{stem.name}.*"):
        if not _is_finished(path):
            path.unlink(missing_ok=True)


def _download(url: str, options: dict, retries: int, backoff: float) -> None:
    for attempt in range(retries + 1):
        try:
            with yt_dlp.YoutubeDL(options) as ydl:
                ydl.extract_info(url, download=True)
            return
        except yt_dlp.utils.DownloadError as exc:
            if attempt == retries or _permanent(exc):
                raise
            time.sleep(backoff * 2**attempt)


def _child_main() -> None:
    """The child process: one download described by JSON on stdin, dying with its parent. Exit 0
    when done; exit 3 with yt-dlp's message as the last line of stdout when it failed."""
    request = json.load(sys.stdin)
    die_with_parent(request["parent"])
    try:
        _download(request["url"], request["options"] | {"logger": _Quiet()}, request["retries"], request["backoff"])
    except yt_dlp.utils.DownloadError as exc:
        print(json.dumps(str(exc)))
        sys.exit(3)


def _run_with_deadline(url: str, options: dict, retries: int, backoff: float, deadline: float) -> None:
    """``_download`` in a fresh interpreter running this module, killed when it outlives
    ``deadline`` seconds (multiprocessing's spawn would re-run the caller's ``__main__`` script).
    The thread that starts the child waits for it, and the child's parent-death signal is tied to
    that thread, so the signal fires only when this process dies."""
    request = {"parent": os.getpid(), "url": url, "options": options, "retries": retries, "backoff": backoff}
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__], input=json.dumps(request), capture_output=True, text=True,
            timeout=deadline, env=env, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise DownloadTimeout(f"{url}: no complete download within {deadline:g} s") from None
    if done.returncode == 3:
        raise yt_dlp.utils.DownloadError(json.loads(done.stdout.strip().splitlines()[-1]))
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DownloadCrashed(f"{url}: the download process died (exit code {done.returncode}): {last}")


def fetch(
    url: str | None,
    folder: str | Path,
    retries: int = 3,
    backoff: float = 2.0,
    timeout: float = 30.0,
    deadline: float = 600.0,
    format: str = "bestaudio/best",
) -> Path:
    """Download ``url`` in yt-dlp ``format`` to ``folder/<hash of the URL>.<ext>``; returns its path.

    A URL whose file is already complete is not fetched again. ``timeout`` bounds each socket
    read and ``deadline`` the whole download, retries included; after any failure no partial file
    is left.
    """
    url = check_url(url)
    stem = inside(folder, hashed_name(url))
    if (done := finished(stem)) is not None:
        return done
    stem.parent.mkdir(parents=True, exist_ok=True)
    options = {
        "outtmpl": f"{stem}.%(ext)s",
        "format": format,
        "noplaylist": True,
        "retries": 0,
        "socket_timeout": timeout,
        "quiet": True,
        "noprogress": True,
    }
    try:
        _run_with_deadline(url, options, retries, backoff, deadline)
        done = finished(stem)
        if done is None:
            raise FileNotFoundError(f"{url}: yt-dlp reported success but wrote no {stem.name}.* file")
    except BaseException:
        remove_partials(stem)
        raise
    return done


def fetch_all(
    urls: Sequence[str | None],
    folder: str | Path,
    max_parallel: int = 4,
    retries: int = 3,
    backoff: float = 2.0,
    timeout: float = 30.0,
    deadline: float = 600.0,
    format: str = "bestaudio/best",
) -> list[Path | Exception]:
    """``fetch`` of every URL, at most ``max_parallel`` at once, so a hung URL holds up one slot
    for its deadline instead of every URL after it. In the order given: the file, or in its
    place the ``FETCH_ERRORS`` error of a URL that could not be had."""

    def one(url: str | None) -> Path | Exception:
        try:
            return fetch(url, folder, retries, backoff, timeout, deadline, format)
        except FETCH_ERRORS as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(urls)))) as pool:
        return list(pool.map(one, urls))


if __name__ == "__main__":
    _child_main()
