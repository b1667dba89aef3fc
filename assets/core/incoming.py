"""Files dropped into <home>/incoming/<kind>/ and the claims that hand them to one run.

The sensor only looks: `scan` lists the settled regular files, and the sensor records the ones it
hands to a batch in its cursor and in the run config. The run's first step calls `claim`, which
moves exactly those files into the batch folder. So a sensor preview or a failed run submission
moves nothing, and a retried step finds its files already moved and carries on.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from assets.core.rejects import Reject
from storage.names import UnsafeName, inside

SETTLE_SECONDS = 2.0
MAX_FILES = 1000  # per batch, so that a claim stays a small run config
STAGE = "claim"


class ClaimedFile(dg.Config):
    """One file handed to a batch: its path under the incoming folder and the stat it was offered with."""

    path: str
    size: int
    mtime_ns: int


def scan(folder: str, now: float, settle: float = SETTLE_SECONDS) -> tuple[list[ClaimedFile], list[str]]:
    """The settled regular files under ``folder`` (not modified for ``settle`` seconds, so a copy in
    progress waits), and one line per entry that cannot be offered: a symbolic link, a special file,
    a file or folder this process cannot read. Hidden names are ignored; folders never count; a
    missing ``folder`` holds nothing."""
    if not os.path.isdir(folder):
        return [], []
    files: list[ClaimedFile] = []
    problems: list[str] = []
    _scan(folder, "", now - settle, files, problems)
    return sorted(files, key=lambda f: f.path), problems


def _scan(folder: str, prefix: str, settled_before: float, files: list[ClaimedFile], problems: list[str]) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        problems.append(f"{prefix or '.'}: cannot list the folder ({exc.strerror})")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        rel = prefix + entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            problems.append(f"{rel}: cannot stat ({exc.strerror})")
            continue
        if stat.S_ISDIR(st.st_mode):
            _scan(entry.path, rel + "/", settled_before, files, problems)
        elif stat.S_ISLNK(st.st_mode):
            problems.append(f"{rel}: a symbolic link, not followed")
        elif not stat.S_ISREG(st.st_mode):
            problems.append(f"{rel}: not a regular file")
        elif st.st_mtime <= settled_before:
            reason = _unreadable(entry.path)
            if reason:
                problems.append(f"{rel}: cannot read ({reason})")
            else:
                files.append(ClaimedFile(path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns))


def _unreadable(path: str) -> str | None:
    """Why this process cannot open ``path`` for reading (an actual open, not the mode bits), or None."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW))
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


class ClaimRefused(Exception):
    """A claimed file that is gone, changed or not a regular file: it is left where it is."""


def claim(files: Sequence[ClaimedFile], incoming: str, target: str, batch: str) -> tuple[list[str], list[Reject]]:
    """Move exactly ``files`` from ``incoming`` into ``target``, keeping sub-folders, then remove the
    folders left empty in ``incoming``. Idempotent: a file already in ``target`` counts as moved. A
    file that vanished, changed since it was offered, or whose path leaves either folder is a reject
    and stays where it is; the rest complete."""
    started = time.time()
    os.makedirs(target, exist_ok=True)
    moved: list[str] = []
    rejects: list[Reject] = []
    for file in files:
        try:
            _move(file, incoming, target)
            moved.append(file.path)
        except (OSError, UnsafeName, ClaimRefused) as exc:
            rejects.append(Reject(batch, file.path, STAGE, type(exc).__name__, str(exc)))
    emptied = {os.path.dirname(os.path.join(incoming, path)) for path in moved}
    remove_empty_folders(incoming, emptied, started - SETTLE_SECONDS)
    return moved, rejects


def _within(folder: str, rel: str) -> Path:
    """``folder/rel`` with its parent resolved inside ``folder`` and its last component not followed."""
    name = os.path.basename(rel)
    if name in ("", ".", ".."):
        raise UnsafeName(f"{rel!r} does not name a file")
    return inside(folder, os.path.dirname(rel)) / name


def _move(file: ClaimedFile, incoming: str, target: str) -> None:
    src, dest = _within(incoming, file.path), _within(target, file.path)
    try:
        st = src.lstat()
    except FileNotFoundError:
        if dest.is_file() and not dest.is_symlink():
            return  # moved by an earlier attempt of this step
        raise ClaimRefused(f"{file.path} vanished from {incoming} before it was claimed") from None
    if not stat.S_ISREG(st.st_mode):
        raise ClaimRefused(f"{file.path} is no longer a regular file")
    if (st.st_size, st.st_mtime_ns) != (file.size, file.mtime_ns):
        raise ClaimRefused(f"{file.path} changed after it was offered; it stays in incoming for a later batch")
    if dest.is_dir():
        raise ClaimRefused(f"{dest} is a folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(src, dest)


def remove_empty_folders(incoming: str, emptied: set[str], settled_before: float) -> None:
    """Remove the empty folders under ``incoming`` that this claim emptied or that have been empty
    and untouched since ``settled_before`` (an empty ``x.mid/`` would otherwise stay forever); a
    folder just made by a copy in progress stays. Hidden folders are left alone."""
    emptied = set(emptied)
    for base, _, _ in os.walk(incoming, topdown=False):
        if base == incoming or any(part.startswith(".") for part in Path(os.path.relpath(base, incoming)).parts):
            continue
        try:
            if base in emptied or os.lstat(base).st_mtime <= settled_before:
                os.rmdir(base)
                emptied.add(os.path.dirname(base))
        except OSError:
            continue  # not empty, or already gone


def claim_step(context: dg.AssetExecutionContext, files: Sequence[ClaimedFile], incoming: str, target: str | Path) -> list[Reject]:
    """`claim` as a run's first step: the files go into the partition's ``target`` folder, and every
    file that could not be claimed is logged and comes back as a reject for the step's table."""
    moved, rejects = claim(files, incoming, str(target), context.partition_key)
    context.log.info(f"{len(moved)} of {len(files)} claimed files are in {target}")
    for reject in rejects:
        context.log.warning(f"not claimed: {reject.item}: {reject.message}")
    return rejects
