"""Registry of symbolic datasets: music21 corpus collections, MusPy's remote datasets and user folders.

Name resolution in list_items/get_info: built-in names first, then names registered
with register_local (in the registry file passed as ``registry_file``, else the one
named by $BATON_LOCAL_DATASETS), then ``incoming_<batch>`` -> ``<raw_dir>/incoming/<batch>``.
Remote datasets live under ``<raw_dir>/<name>/`` once downloaded.
A dataset split into shards (``DatasetInfo.shards``) is several partitions; ``shard_items`` lists one.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from assets.core import dataset_shards
from assets.core.http import check_url

from . import local
from .archives import (
    ChecksumError,
    DownloadError,
    download_archive,
    extracted_dir,
    is_complete,
)
from .formats import items_for_file
from .hymnal import download_hymnal
from .items import DatasetInfo, ScoreItem
from .music21_corpus import COLLECTIONS, CORPUS_DIR, list_collection
from .muspy_sources import REMOTE_SOURCES, ArchiveSource, CrawlSource

__all__ = [
    "ChecksumError",
    "DatasetInfo",
    "DownloadError",
    "ScoreItem",
    "download",
    "get_info",
    "is_present",
    "list_datasets",
    "list_items",
    "partition_keys",
    "present_datasets",
    "register_local",
    "shard_items",
]


def _builtin() -> dict[str, DatasetInfo]:
    """Read at call time, so replacing a REMOTE_SOURCES entry (a mirror, a test server) takes effect."""
    infos = {name: c.info for name, c in COLLECTIONS.items()}
    infos.update({name: s.info for name, s in REMOTE_SOURCES.items()})
    return infos


def list_datasets(registry_file: str | Path | None = None) -> list[DatasetInfo]:
    """Built-in datasets, then registered local folders."""
    registered, shards = local.load_registry(registry_file), local.load_shards(registry_file)
    return list(_builtin().values()) + [local.local_info(n, f, shards[n]) for n, f in sorted(registered.items())]


def is_present(info: DatasetInfo, raw_dir: str | Path, registry_file: str | Path | None = None) -> bool:
    """Whether the dataset's files are on this machine, so its partitions materialize offline: a
    collection of the installed music21 corpus, a local or incoming folder that exists, or a remote
    dataset whose download finished (``<raw_dir>/<name>/.complete``, written last by `download`)."""
    if info.kind == "music21":
        return (CORPUS_DIR / COLLECTIONS[info.name].folder).is_dir()
    if info.kind == "remote":
        return is_complete(raw_dir, info.name)
    return Path(local.load_registry(registry_file).get(info.name) or local.incoming_folder(info.name, raw_dir)).is_dir()


def present_datasets(raw_dir: str | Path, registry_file: str | Path | None = None) -> list[DatasetInfo]:
    """The datasets of list_datasets whose files are present (is_present)."""
    return [info for info in list_datasets(registry_file) if is_present(info, raw_dir, registry_file)]


def get_info(name: str, registry_file: str | Path | None = None) -> DatasetInfo:
    builtin = _builtin()
    if name in builtin:
        return builtin[name]
    registered = local.load_registry(registry_file)
    if name in registered:
        return local.local_info(name, registered[name], local.load_shards(registry_file)[name])
    if name.startswith(local.INCOMING_PREFIX):
        return local.local_info(name, f"<raw_dir>/incoming/{name.removeprefix(local.INCOMING_PREFIX)}")
    known = ", ".join(sorted(builtin) + sorted(registered))
    raise KeyError(f"unknown dataset {name!r}; known datasets: {known} (or incoming_<batch>)")


def list_items(name: str, raw_dir: str | Path, registry_file: str | Path | None = None) -> list[ScoreItem]:
    """Every score item of a dataset, sorted by item_id."""
    info = get_info(name, registry_file)
    if info.kind == "music21":
        items = list_collection(name)
    elif info.kind == "remote":
        items = _list_remote(REMOTE_SOURCES[name], raw_dir)
    else:
        folder = local.load_registry(registry_file).get(name) or local.incoming_folder(name, raw_dir)
        items = local.list_folder(name, folder)
    return sorted(items, key=lambda item: item.item_id)


def partition_keys(name: str, registry_file: str | Path | None = None) -> list[str]:
    """The partitions of dataset `name`: the name itself, or one key per shard."""
    return dataset_shards.partition_keys(name, get_info(name, registry_file).shards)


def shard_items(key: str, raw_dir: str | Path, registry_file: str | Path | None = None) -> list[ScoreItem]:
    """The items of the partition `key`: a whole dataset, or those of its items whose id hashes to
    the key's shard. The key says its shard count, so a key made before the count changed still
    lists a consistent part."""
    name, shard, n = dataset_shards.parse_key(key)
    return [item for item in list_items(name, raw_dir, registry_file) if dataset_shards.shard_of(item.item_id, n) == shard]


def download(name: str, raw_dir: str | Path, progress: bool = True) -> str:
    """Fetch a remote dataset into `<raw_dir>/<name>/extracted` (idempotent) and return that folder.
    Every shard of a dataset may ask at once: one process fetches under an flock on
    `<raw_dir>/.<name>.download.lock`, the others wait, then find the download complete."""
    if get_info(name).kind != "remote":
        raise ValueError(f"dataset {name!r} is not remote; nothing to download")
    source = REMOTE_SOURCES[name]
    check_url(source.base_url if isinstance(source, CrawlSource) else source.url)  # before anything is written
    Path(raw_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(raw_dir) / f".{name}.download.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or its holder dies
        if isinstance(source, CrawlSource):
            return str(download_hymnal(source, raw_dir, progress))
        return str(download_archive(source, raw_dir, progress))


def register_local(name: str, folder: str | Path, registry_file: str | Path, shards: int = 1) -> None:
    """Make `folder` listable as dataset `name`, split into `shards` partitions; the mapping persists
    in `registry_file` (JSON)."""
    local.register_local(name, folder, registry_file, reserved=set(_builtin()), shards=shards)


def _list_remote(source: ArchiveSource | CrawlSource, raw_dir: str | Path) -> list[ScoreItem]:
    name = source.info.name
    if not is_complete(raw_dir, name):
        raise FileNotFoundError(
            f"dataset {name} is not downloaded under {Path(raw_dir) / name}; run `baton datasets download {name}`"
        )
    root = extracted_dir(raw_dir, name)
    return [
        item
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and path.suffix.lower() in source.suffixes
        and not any(part.startswith(".") or part == "__MACOSX" for part in path.relative_to(root).parts)
        for item in items_for_file(name, root, path)
    ]
