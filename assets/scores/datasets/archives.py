"""Fetch, verify and unpack a checksummed dataset archive.

Layout under ``<raw_dir>/<name>/``: the archive as downloaded, ``extracted/`` and a
``.complete`` marker written last, so an interrupted run is simply redone. The
download (bounded in time and size, see assets.core.http) lands as ``<archive>.unverified``
and is renamed only after its checksum matches; extraction goes to a temporary folder
renamed into place, so a failure never leaves a half-extracted dataset. An archive copied
in by hand is verified and used. Extraction is bounded too (UnpackLimits): a zip bomb is
refused on its headers before a byte is written, and the bytes actually written are counted
against the same limits.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from assets.core.http import DownloadError, check_url, download
from storage.names import UnsafeName, inside

from .muspy_sources import ArchiveSource

CHUNK = 1 << 20
TIMEOUT_S = 60
DEADLINE_S = 4 * 3600
"""A whole archive's download: lmd_full is 1.7 GB, over an hour on a slow link."""
RATIO_FLOOR = 1 << 20
"""Bytes any member (and any archive) may extract to whatever its ratio: a small padded text
file compresses past 200:1, and a MiB of it harms nothing."""

class ChecksumError(DownloadError):
    """A fetched or hand-placed archive does not match the published checksum."""


class UnpackLimit(DownloadError):
    """An archive would extract past one of its UnpackLimits."""


@dataclass(frozen=True)
class UnpackLimits:
    """What one archive may extract to. The defaults leave room for the largest MusPy dataset
    (lmd_full: 176,581 files) and refuse a zip bomb."""

    max_bytes: int = 16 << 30
    max_ratio: float = 200.0
    max_members: int = 1_000_000


def dataset_dir(raw_dir: str | Path, name: str) -> Path:
    return Path(raw_dir) / name


def extracted_dir(raw_dir: str | Path, name: str) -> Path:
    return dataset_dir(raw_dir, name) / "extracted"


def is_complete(raw_dir: str | Path, name: str) -> bool:
    return (dataset_dir(raw_dir, name) / ".complete").is_file()


def offline_error(name: str, failure: DownloadError, place_at: Path) -> DownloadError:
    """``failure`` (``<url>: <reason>``) as the same kind of error, saying how to get the data by hand."""
    return type(failure)(
        f"cannot download {name} from {failure}. "
        f"Download it on a machine with internet and place the archive at {place_at}"
    )


def download_archive(
    source: ArchiveSource, raw_dir: str | Path, progress: bool = True, limits: UnpackLimits = UnpackLimits()
) -> Path:
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
        _fetch(source, archive, progress, limits)
    _unpack(source, archive, out, limits)
    (dataset_dir(raw_dir, name) / ".complete").write_text(f"{source.url}\n")
    return out


def _fetch(source: ArchiveSource, archive: Path, progress: bool, limits: UnpackLimits) -> None:
    """An archive larger than it may extract to is refused while downloading."""
    unverified = archive.with_name(archive.name + ".unverified")
    try:
        download(
            source.url,
            unverified,
            timeout=TIMEOUT_S,
            deadline=DEADLINE_S,
            max_bytes=limits.max_bytes,
            progress=progress,
        )
    except DownloadError as error:
        raise offline_error(source.info.name, error, archive) from error
    try:
        _verify(source, unverified, f"the download from {source.url} was corrupted and has been discarded")
    except ChecksumError:
        unverified.unlink()
        raise
    unverified.rename(archive)


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


UNPACK_ERRORS = (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, RuntimeError, UnsafeName, OSError)
"""What a corrupt, truncated, encrypted or path-escaping archive raises while being read."""


def _unpack(source: ArchiveSource, archive: Path, out: Path, limits: UnpackLimits) -> None:
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if not source.archive:
            shutil.copy2(archive, tmp / archive.name)
        elif zipfile.is_zipfile(archive):
            unzip(archive, tmp, limits)
        else:
            _untar(archive, tmp, limits)
    except UNPACK_ERRORS as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, DownloadError):
            raise
        raise DownloadError(f"cannot unpack {archive}: {error}") from error
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


class _Budget:
    """What one archive has extracted so far, against its limits; a refusal names the archive,
    the limit and the member it was reached at."""

    def __init__(self, archive: Path, limits: UnpackLimits) -> None:
        self.archive, self.limits = archive, limits
        self.archive_cap = max(limits.max_ratio * archive.stat().st_size, RATIO_FLOOR)
        self.members = self.total = self.member_bytes = 0
        self.member, self.member_cap = "", math.inf

    def start(self, member: str, compressed: int | None) -> None:
        """A new member, taking ``compressed`` bytes of the archive (None where the format does not say)."""
        self.members += 1
        self.member, self.member_bytes = member, 0
        if self.members > self.limits.max_members:
            self._refuse(f"it holds more than {self.limits.max_members:,} members (max_members)")
        self.member_cap = math.inf if compressed is None else max(self.limits.max_ratio * compressed, RATIO_FLOOR)

    def add(self, size: int) -> None:
        """``size`` more bytes of the current member."""
        self.total += size
        self.member_bytes += size
        if self.total > self.limits.max_bytes:
            self._refuse(f"it extracts to more than {self.limits.max_bytes:,} bytes (max_bytes)")
        if self.total > self.archive_cap or self.member_bytes > self.member_cap:
            self._refuse(f"it expands more than {self.limits.max_ratio:g}:1 (max_ratio)")

    def _refuse(self, why: str) -> None:
        raise UnpackLimit(f"refusing to unpack {self.archive}: {why}, reached at member {self.member!r}")


def unzip(archive: Path, folder: Path, limits: UnpackLimits = UnpackLimits()) -> None:
    """The headers are checked first, so a bomb is refused before a byte is written; then every
    chunk written counts, in case a header understates what its member holds."""
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        declared = _Budget(archive, limits)
        for info in members:
            declared.start(info.filename, info.compress_size)
            declared.add(info.file_size)
        written = _Budget(archive, limits)
        for info in members:
            written.start(info.filename, info.compress_size)
            _unzip_member(zf, info, inside(folder, info.filename), written)


def _unzip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, budget: _Budget) -> None:
    if info.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as member, path.open("wb") as out:
        while chunk := member.read(CHUNK):
            budget.add(len(chunk))
            out.write(chunk)


def _untar(archive: Path, folder: Path, limits: UnpackLimits) -> None:
    """Members are checked one by one as the stream reaches them, before each is written; tarfile
    writes exactly the size a member's header gives, so that size is the real count."""
    budget = _Budget(archive, limits)

    def checked(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        member = tarfile.data_filter(member, dest)  # no absolute or escaping paths, links or devices
        budget.start(member.name, None)
        budget.add(member.size)
        return member

    with tarfile.open(archive) as tf:  # gz, bz2, xz or plain tar; anything else raises ReadError
        tf.extractall(folder, filter=checked)
