"""Random training crops streamed from many sources, and the evaluation windows that cover every token."""

from __future__ import annotations

import itertools
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

IGNORE_INDEX = -100
"""Right padding of crops shorter than ``seq_len + 1``; ``cross_entropy`` skips these targets."""


def _cycle(factory: Callable[[], Iterable[np.ndarray]], name: str) -> Iterator[np.ndarray]:
    """Endless songs of at least 2 tokens, calling ``factory`` again each time it runs dry."""
    while True:
        usable = 0
        for seq in factory():
            seq = np.asarray(seq)
            if len(seq) >= 2:
                usable += 1
                yield seq
        if not usable:
            raise ValueError(f"{name} yields no sequence of at least 2 tokens")


def _shuffled(stream: Iterator[np.ndarray], size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Approximate shuffle of an endless stream holding at most ``size`` songs in memory."""
    buffer = list(itertools.islice(stream, size))
    for item in stream:
        i = int(rng.integers(size))
        yield buffer[i]
        buffer[i] = item


def _crop(seq: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    out = np.full(length, IGNORE_INDEX, dtype=np.int64)
    start = int(rng.integers(len(seq) - length + 1)) if len(seq) > length else 0
    window = seq[start : start + length]
    out[: len(window)] = window
    return out


def crop_batches(
    sources: Sequence[Callable[[], Iterable[np.ndarray]]],
    seq_len: int,
    batch_size: int,
    seed: int,
    stratified: bool = False,
    shuffle_buffer: int = 1024,
) -> Iterator[torch.Tensor]:
    """Endless LongTensor batches (batch_size, seq_len + 1) of random crops, one crop per song drawn.

    Each source is a factory re-called whenever its songs run out, so songs are streamed
    (e.g. from Parquet shards) and only ``shuffle_buffer`` of them per stream are held.
    Songs shorter than 2 tokens are skipped; songs shorter than ``seq_len + 1`` are padded
    on the right with ``IGNORE_INDEX`` (-100), which the loss ignores as a target.
    ``stratified=False`` chains the sources, so datasets contribute in proportion to their
    number of songs; ``stratified=True`` draws each crop's source uniformly (the paper's
    stratified sampling), giving small datasets equal weight.
    """
    rng = np.random.default_rng(seed)
    if stratified:
        streams = [_shuffled(_cycle(f, f"source {i}"), shuffle_buffer, rng) for i, f in enumerate(sources)]
        songs = (next(streams[int(rng.integers(len(streams)))]) for _ in itertools.count())
    else:

        def chained() -> Iterator[np.ndarray]:
            return itertools.chain.from_iterable(f() for f in sources)

        songs = _shuffled(_cycle(chained, "every source"), shuffle_buffer, rng)
    while True:
        crops = [_crop(next(songs), seq_len + 1, rng) for _ in range(batch_size)]
        yield torch.from_numpy(np.stack(crops))


def eval_windows(sequences: Iterable[np.ndarray], seq_len: int) -> Iterator[np.ndarray]:
    """Windows of seq_len + 1 tokens at stride seq_len: every token after the first is a target exactly once."""
    for seq in sequences:
        seq = np.asarray(seq)
        for start in range(0, len(seq) - 1, seq_len):
            window = np.full(seq_len + 1, IGNORE_INDEX, dtype=np.int64)
            part = seq[start : start + seq_len + 1]
            window[: len(part)] = part
            yield window
