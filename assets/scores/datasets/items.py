"""The two records the dataset registry hands out: datasets and the score files in them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreItem:
    """One score to ingest: a file, or one tune of a multi-tune ABC file."""

    dataset: str
    item_id: str  # stable and unique inside the dataset, e.g. "bach/bwv66.6.mxl", "x.abc#X12"
    path: str  # absolute local path
    format: str  # "midi" | "musicxml" | "abc" | "humdrum" | "music21" | "unknown"
    number: int | None = None  # ABC reference number (X:) in a multi-tune file


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    kind: str  # "music21" | "local" | "remote"
    description: str
    license: str
    url: str  # homepage
    shards: int = 1  # partitions the dataset's files are split into (assets.core.dataset_shards)
