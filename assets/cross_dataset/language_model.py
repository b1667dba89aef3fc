"""The MusPy cross-dataset experiment over event-sequence shards: train, then score every pairing.

Sequences are streamed from the shard store split by split, so neither training nor evaluation
holds a dataset in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import torch

from assets.core import plots
from assets.core.dataset_shards import keys_of
from assets.cross_dataset.events import VOCAB_SIZE
from models import music_lm
from models.training import FitResult
from storage import shards

EVENTS_ASSET = "event_sequences"
COMBINED_MODES = ("all", "stratified")


def sequence_source(datasets_root: str, dataset: str, split: str) -> Callable[[], Iterable[np.ndarray]]:
    """A re-callable stream of one split's event arrays over every shard of ``dataset`` (what
    crop_batches and evaluate consume)."""

    def stream() -> Iterable[np.ndarray]:
        keys = keys_of(dataset, shards.list_partitions(datasets_root, EVENTS_ASSET)) or [dataset]
        for batch in shards.iter_batches(
            datasets_root, EVENTS_ASSET, keys, columns=["events"], filter=pc.field("split") == split
        ):
            for events in batch.column("events").to_numpy(zero_copy_only=False):
                yield np.asarray(events, dtype=np.int64)

    return stream


def model_config(base: music_lm.LMConfig, arch: str) -> music_lm.LMConfig:
    """A profile's config for ``arch`` over the event vocabulary; an unknown arch fails before any data is read."""
    if arch not in music_lm.ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {music_lm.ARCHS}")
    return replace(base, arch=arch, vocab_size=VOCAB_SIZE)


def pooled_perplexity(results: Iterable[dict[str, float]]) -> float:
    """The perplexity over every token of several `music_lm.evaluate` results: exp of their
    token-weighted mean loss, so a large test set counts for its size (not a mean of perplexities)."""
    results = list(results)
    tokens = sum(r["tokens"] for r in results)
    if not tokens:
        raise ValueError("no test token to score")
    return math.exp(sum(r["loss"] * r["tokens"] for r in results) / tokens)


def perplexity_on_tests(
    datasets_root: str, model: torch.nn.Module, datasets: Sequence[str], seq_len: int, device: torch.device
) -> float:
    """``pooled_perplexity`` over the test splits of ``datasets``, the score a candidate is promoted by."""
    return pooled_perplexity(
        music_lm.evaluate(model, sequence_source(datasets_root, d, "test")(), seq_len, device) for d in datasets
    )


def train_on(
    datasets_root: str,
    datasets: Sequence[str],
    cfg: music_lm.LMConfig,
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    stratified: bool = False,
    progress: bool = False,
) -> tuple[torch.nn.Module, FitResult]:
    """Train one model on the train splits of `datasets`, early-stopped on their valid splits."""
    train_sources = [sequence_source(datasets_root, d, "train") for d in datasets]
    valid_sources = [sequence_source(datasets_root, d, "valid") for d in datasets]

    def valid() -> Iterable[np.ndarray]:
        for source in valid_sources:
            yield from source()

    batches = music_lm.crop_batches(train_sources, cfg.seq_len, cfg.batch_size, cfg.seed, stratified=stratified)
    return music_lm.train(cfg, batches, valid, ckpt_dir, log, progress=progress)


def perplexity_matrix(
    datasets_root: str,
    models: Mapping[str, tuple[torch.nn.Module, music_lm.LMConfig]],
    test_sets: Sequence[str],
    device: torch.device,
) -> pd.DataFrame:
    """Rows: the training set of each model; columns: the dataset whose test split is scored.

    ``models`` maps a training set to its model and the config it was trained with: each model is
    scored in windows of its own ``seq_len`` (a transformer has no positions past it).
    """
    matrix = pd.DataFrame(index=list(models), columns=list(test_sets), dtype=float)
    for train_name, (model, cfg) in models.items():
        for test_name in test_sets:
            result = music_lm.evaluate(model, sequence_source(datasets_root, test_name, "test")(), cfg.seq_len, device)
            matrix.loc[train_name, test_name] = result["perplexity"]
    matrix.index.name = "trained on"
    matrix.columns.name = "tested on"
    return matrix


def heatmap_png(matrix: pd.DataFrame, title: str = "Cross-dataset perplexity") -> bytes:
    """The paper's Figure 2.10: log-scaled colours, the value in every cell."""
    return plots.matrix_png(
        matrix.to_numpy(dtype=float), list(matrix.index), list(matrix.columns), title=title,
        xlabel=matrix.columns.name or "", ylabel=matrix.index.name or "", colour_label="log perplexity", log=True,
    )


def long_matrix(matrix: pd.DataFrame) -> pd.DataFrame:
    """The matrix as rows of (trained_on, tested_on, perplexity), the shape the shard store keeps."""
    long = matrix.reset_index().melt(id_vars=matrix.index.name, var_name="tested on", value_name="perplexity")
    return long.rename(columns={matrix.index.name: "trained_on", "tested on": "tested_on"})
