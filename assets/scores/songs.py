"""Songs in a notes shard set: streamed grouping by song, and the seeded 8:1:1 split every system shares."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

SPLITS = ("train", "valid", "test")


def iter_songs(batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[str, pa.Table]]:
    """Group streamed note rows by song; rows of a song are contiguous but may straddle batches."""
    pending: list[pa.RecordBatch] = []
    current: str | None = None
    for batch in batches:
        songs = batch.column("song").to_numpy(zero_copy_only=False)
        if len(songs) == 0:
            continue
        cuts = np.flatnonzero(songs[1:] != songs[:-1]) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(songs)]])
        for start, end in zip(starts, ends):
            song = songs[start]
            piece = batch.slice(start, end - start)
            if song != current and pending:
                yield current, pa.Table.from_batches(pending)
                pending = []
            current = song
            pending.append(piece)
    if pending:
        yield current, pa.Table.from_batches(pending)


def assign_splits(songs: list[str], seed: int = 0, fractions: tuple[float, float] = (0.8, 0.1)) -> dict[str, str]:
    """Seeded 8:1:1 split by song; depends only on the set of song ids, not on their order."""
    ordered = sorted(songs)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    n_train = int(round(fractions[0] * len(ordered)))
    n_valid = int(round(fractions[1] * len(ordered)))
    labels = np.array(["test"] * len(ordered), dtype=object)
    labels[perm[:n_train]] = "train"
    labels[perm[n_train : n_train + n_valid]] = "valid"
    return dict(zip(ordered, labels))
