"""Large datasets as shards of files: the partition keys of one dataset and which shard an item is in.

A dataset with ``shards == 1`` is the one partition ``<dataset>``; one with ``n > 1`` shards is the
partitions ``<dataset>.s<i>of<n>`` (``i`` zero-padded to the width of ``n``, e.g. ``lmd.s07of64``),
so its files become steps a cluster runs side by side. An item's shard is a hash of its id (its path
relative to the dataset root, plus ``#X<number>`` for a tune of a many-tune file), never Python's
salted ``hash()``: every process, machine and run puts an item in the same shard. Assets that consume
a whole dataset read all of its keys (``keys_of``); users still name the dataset.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

_SHARD_KEY = re.compile(r"(?P<dataset>.+)\.s(?P<shard>[0-9]+)of(?P<n>[1-9][0-9]*)")


def shard_key(dataset: str, shard: int, n: int) -> str:
    return f"{dataset}.s{shard:0{len(str(n))}d}of{n}"


def parse_key(key: str) -> tuple[str, int, int]:
    """``(dataset, shard, n)`` of a partition key; a key without a well-formed shard suffix (same
    width for both numbers, ``shard < n``, ``n > 1``) is a whole dataset: ``(key, 0, 1)``."""
    match = _SHARD_KEY.fullmatch(key)
    if match:
        dataset, shard, n = match["dataset"], int(match["shard"]), int(match["n"])
        if n > 1 and shard < n and key == shard_key(dataset, shard, n):
            return dataset, shard, n
    return key, 0, 1


def partition_keys(dataset: str, shards: int) -> list[str]:
    """The partition keys of ``dataset`` split into ``shards``; ValueError for a count under 1 or a
    dataset name that reads as a shard key itself."""
    if shards < 1:
        raise ValueError(f"dataset {dataset}: the shard count must be at least 1, not {shards}")
    if parse_key(dataset) != (dataset, 0, 1):
        raise ValueError(f"dataset name {dataset!r} reads as a shard key; rename the dataset")
    return [dataset] if shards == 1 else [shard_key(dataset, i, shards) for i in range(shards)]


def shard_of(item_id: str, n: int) -> int:
    """The shard (0 .. n-1) of the item with this id: the first 8 bytes of its SHA-1, modulo ``n``."""
    digest = hashlib.sha1(item_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % n


def keys_of(dataset: str, available: Iterable[str]) -> list[str]:
    """The keys among ``available`` that hold part of ``dataset`` (the dataset itself or its shards), by shard."""
    return sorted((key for key in available if parse_key(key)[0] == dataset), key=lambda key: parse_key(key)[1:])


def complete(dataset: str, available: Iterable[str]) -> bool:
    """Whether ``available`` holds every shard of ``dataset`` under one shard count, and nothing else of it."""
    keys = keys_of(dataset, available)
    counts = {parse_key(key)[2] for key in keys}
    return len(counts) == 1 and keys == partition_keys(dataset, counts.pop())


def datasets_of(available: Sequence[str]) -> list[str]:
    """The datasets that ``available`` holds completely, in order of first appearance: what a
    whole-dataset consumer may select (a half-processed sharded dataset is not among them)."""
    names = dict.fromkeys(parse_key(key)[0] for key in available)
    return [name for name in names if complete(name, available)]


def all_keys(datasets: Iterable[str], available: Sequence[str]) -> list[str]:
    """Every key of every one of ``datasets`` among ``available``: what a whole-dataset consumer reads."""
    return [key for dataset in datasets for key in keys_of(dataset, available)]
