"""Fetch, verify and unpack a checksummed dataset archive.

Layout under ``<raw_dir>/<name>/``: the archive as downloaded, ``extracted/`` and a
``.complete`` marker written last, so an interrupted run is simply redone. The
download streams to ``<archive>.part`` and is renamed only after its checksum
matches; extraction goes to a temporary folder renamed into place, so a failure
never leaves a half-extracted dataset. An archive copied in by hand is verified and used.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from .muspy_sources import ArchiveSource

CHUNK = 1 << 20
TIMEOUT_S = 60


class DownloadError(RuntimeError):
    """A dataset could not be fetched or unpacked."""


class ChecksumError(DownloadError):
    """A fetched or hand-placed archive does not match the published checksum."""


class UnsupportedURL(DownloadError):
    """A source URL with a scheme other than http(s); urllib would read local files or inline data."""


def check_url(url: str) -> None:
    """Refuse anything but an http(s) URL before a byte is fetched or written."""
    scheme = urlparse(url).scheme
    if scheme not in ("http", "https"):
        raise UnsupportedURL(f"refusing to download {url!r}: scheme {scheme or '(none)'!r} is not http or https")


def dataset_dir(raw_dir: str | Path, name: str) -> Path:
    return Path(raw_dir) / name


def extracted_dir(raw_dir: str | Path, name: str) -> Path:
    return dataset_dir(raw_dir, name) / "extracted"


def is_complete(raw_dir: str | Path, name: str) -> bool:
    return (dataset_dir(raw_dir, name) / ".complete").is_file()


def offline_error(name: str, url: str, reason: object, place_at: Path) -> DownloadError:
    return DownloadError(
        f"cannot download {name} from {url}: {reason}. "
        f"Download it on a machine with internet and place the archive at {place_at}"
    )


def download_archive(source: ArchiveSource, raw_dir: str | Path, progress: bool = True) -> Path:
    """Make `<raw_dir>/<name>/extracted` hold the verified contents of the source; idempotent."""
    check_url(source.url)
    name = source.info.name
    out = extracted_dir(raw_dir, name)
    if is_complete(raw_dir, name):
        return out
    archive = dataset_dir(raw_dir, name) / source.filename
    archive.parent.mkdir(parents=True, exist_ok=True)
    if archive.exists():
        _verify(source, archive, f"the archive at {archive} does not match {source.url}; delete or replace it")
    else:
        _fetch(source, archive, progress)
    _unpack(source, archive, out)
    (dataset_dir(raw_dir, name) / ".complete").write_text(f"{source.url}\n")
    return out


def _fetch(source: ArchiveSource, archive: Path, progress: bool) -> None:
    part = archive.with_name(archive.name + ".part")
    try:
        with urllib.request.urlopen(source.url, timeout=TIMEOUT_S) as response, part.open("wb") as f:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(CHUNK):
                f.write(chunk)
                done += len(chunk)
                if progress:
                    print(f"\r{source.info.name}: {done / 1e6:.1f} / {total / 1e6:.1f} MB", end="", file=sys.stderr)
        if progress:
            print(file=sys.stderr)
    except (OSError, http.client.HTTPException) as error:
        part.unlink(missing_ok=True)
        raise offline_error(source.info.name, source.url, getattr(error, "reason", error), archive) from error
    try:
        _verify(source, part, f"the download from {source.url} was corrupted and has been discarded")
    except ChecksumError:
        part.unlink()
        raise
    part.rename(archive)


def _verify(source: ArchiveSource, path: Path, consequence: str) -> None:
    expected = {algo: digest for algo, digest in (("md5", source.md5), ("sha256", source.sha256)) if digest}
    hashes = {algo: hashlib.new(algo) for algo in expected}
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashes.values():
                h.update(chunk)
    for algo, digest in expected.items():
        actual = hashes[algo].hexdigest()
        if actual != digest:
            raise ChecksumError(
                f"{source.info.name}: {algo} checksum mismatch (expected {digest}, got {actual}): {consequence}"
            )


def _unpack(source: ArchiveSource, archive: Path, out: Path) -> None:
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if not source.archive:
            shutil.copy2(archive, tmp / archive.name)
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)  # zipfile drops absolute and ".." path parts
        else:
            with tarfile.open(archive) as tf:  # gz, bz2, xz or plain tar; anything else raises ReadError
                tf.extractall(tmp, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadError(f"cannot unpack {archive}: {error}") from error
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
