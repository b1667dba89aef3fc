"""A local folder of files mirrored to an fsspec URI (s3://, gs://, a shared disk) and restored from it.

Training checkpoints live in a local folder; a mirror lets a retry on another machine resume.
One file of the folder is its commit file (the checkpoint a resume reads): it is pushed after
every other file and pulled after them, and every file lands whole (one PUT on an object
store, a temporary file renamed into place on a disk), so a crash mid-push or mid-pull never
leaves a commit file beside files older than the ones it was saved with. Only top-level files
are mirrored; dotfiles (locks, temporary files) are not.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from storage.shards import modified_time

log = logging.getLogger(__name__)


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(uri, use_listings_cache=False)
    return fs, root.rstrip("/")


def _commit_last(names: list[str], commit: str) -> list[str]:
    return sorted(names, key=lambda name: (name == commit, name))


def _upload(fs: fsspec.AbstractFileSystem, src: Path, dst: str) -> None:
    if not isinstance(fs, LocalFileSystem):
        fs.put_file(str(src), dst)  # a multipart upload, too, appears only when complete
        return
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{dst}.{os.getpid()}.tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def push_dir(local: str, uri: str, commit: str) -> bool:
    """Upload the folder's files to `uri`, `commit` last; whether there was a commit file to push.

    The commit file is pinned first (a hard link to its current bytes), so a checkpoint saved
    during the push is not paired with files uploaded before it. Afterwards the local commit file
    carries the remote copy's modification time: `pull_dir` then knows the two are the same.
    """
    folder = Path(local)
    pinned = folder / f".{commit}.pushing"
    pinned.unlink(missing_ok=True)
    try:
        os.link(folder / commit, pinned)
    except FileNotFoundError:
        return False
    try:
        fs, root = _fs(uri)
        fs.makedirs(root, exist_ok=True)
        names = [p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        for name in _commit_last([n for n in names if n != commit] + [commit], commit):
            _upload(fs, pinned if name == commit else folder / name, f"{root}/{name}")
        stamp = modified_time(fs.info(f"{root}/{commit}"))
        os.utime(pinned, (stamp, stamp))  # the same inode as `commit` unless a newer save replaced it
    finally:
        pinned.unlink(missing_ok=True)
    return True


def pull_dir(uri: str, local: str, commit: str) -> bool:
    """Restore the folder from `uri` when the remote commit file is newer than the local one (or
    the local one is missing); whether it did."""
    fs, root = _fs(uri)
    try:
        remote = modified_time(fs.info(f"{root}/{commit}"))
    except FileNotFoundError:
        return False
    folder = Path(local)
    with suppress(FileNotFoundError):
        if (folder / commit).stat().st_mtime >= remote:
            return False
    folder.mkdir(parents=True, exist_ok=True)
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]
    for name in _commit_last([n for n in names if not n.startswith(".")], commit):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        try:
            fs.get_file(f"{root}/{name}", tmp)
            os.replace(tmp, folder / name)
        finally:
            Path(tmp).unlink(missing_ok=True)
    os.utime(folder / commit, (remote, remote))
    return True


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


@contextmanager
def mirrored(local: str, uri: str, commit: str, every_s: float = 1.0) -> Iterator[None]:
    """Push the folder to `uri` whenever its commit file changes (looked at every `every_s`), and
    once more on exit, so each checkpoint reaches the remote copy without the training loop
    knowing there is one. A push that fails in between is logged and retried at the next change."""
    commit_path = Path(local) / commit
    pushed: list[tuple[int, int] | None] = [None]  # a commit file already there may never have been pushed
    stop = threading.Event()

    def push_if_changed() -> None:
        before = _signature(commit_path)
        if before in (None, pushed[0]) or not push_dir(local, uri, commit):
            return
        after = _signature(commit_path)  # stamped by the push, unless a newer save replaced the file
        pushed[0] = after if after is not None and after[0] == before[0] else before

    def watch() -> None:
        while not stop.wait(every_s):
            try:
                push_if_changed()
            except Exception:
                log.warning("pushing %s to %s failed; retrying at the next checkpoint", local, uri, exc_info=True)

    watcher = threading.Thread(target=watch, name=f"mirror {local}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        push_if_changed()
