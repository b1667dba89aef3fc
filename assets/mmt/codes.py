"""MMT code shards: one row per song with its (n, 6) event codes, encoded from the note shards.

Songs the MMT vocabulary cannot express (drums only, no known instrument) become rejects with
the encoder's reason instead of failing the partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.core.rejects import Reject
from assets.scores.songs import iter_songs
from models.mmt import encoding as mmt_encoding
from storage import shards

ASSET = "mmt_codes"
DEFAULT_DATASETS = ("bach_chorales", "haydn_quartets", "mozart_quartets", "beethoven_quartets", "monteverdi")
"""The multi-part music21 collections: chorales, string quartets and madrigals."""

CODES = pa.schema(
    [
        ("dataset", pa.string()),
        ("song", pa.string()),
        ("split", pa.string()),
        ("n_events", pa.int32()),
        ("n_notes", pa.int32()),
        ("codes", pa.list_(pa.list_(pa.int16(), len(mmt_encoding.FIELDS)))),
    ]
)


def encode_songs(
    dataset: str, batches: Iterable[pa.RecordBatch], splits: dict[str, str], max_seq_len: int
) -> Iterator[dict | Reject]:
    """A code row per song of the streamed note rows, or a reject saying why it cannot be encoded."""
    for song, notes in iter_songs(batches):
        try:
            codes = mmt_encoding.encode(notes, max_seq_len=max_seq_len)
        except mmt_encoding.EncodingError as exc:
            yield Reject(dataset, song, "mmt_encode", type(exc).__name__, str(exc))
            continue
        yield {
            "dataset": dataset,
            "song": song,
            "split": splits[song],
            "n_events": len(codes),
            "n_notes": int((codes[:, 0] == mmt_encoding.TYPE_NOTE).sum()),
            "codes": codes.tolist(),
        }


def write_encoded(rows: Iterable[dict | Reject], writer: shards.ShardWriter) -> tuple[list[Reject], list[int]]:
    """Stream the code rows into ``writer``; the rejects and every written song's event count come back."""
    rejects, lengths = [], []
    for row in rows:
        if isinstance(row, Reject):
            rejects.append(row)
        else:
            lengths.append(row["n_events"])
            writer.write([row])
    return rejects, lengths


def length_stats(lengths: Sequence[int], max_seq_len: int) -> dict[str, float | int]:
    """Mean events per song and how many songs the ``max_seq_len`` cut (a sign it is too short)."""
    return {
        "mean_events": float(np.mean(lengths)) if len(lengths) else 0.0,
        "truncated_songs": int(sum(n >= max_seq_len for n in lengths)),
    }


def to_codes(column: pa.ListArray) -> list[np.ndarray]:
    """The nested list column back to (n, 6) int64 arrays without a Python loop over rows' fields."""
    flat = column.flatten().flatten().to_numpy(zero_copy_only=False).astype(np.int64).reshape(-1, len(mmt_encoding.FIELDS))
    offsets = column.offsets.to_numpy()
    return [flat[start:end] for start, end in zip(offsets[:-1], offsets[1:])]


def read_sequences(datasets_root: str, datasets: Sequence[str], split: str) -> tuple[list[str], list[np.ndarray]]:
    """Song ids and code arrays of one split over several datasets, streamed shard by shard."""
    songs: list[str] = []
    codes: list[np.ndarray] = []
    for batch in shards.iter_batches(
        datasets_root, ASSET, list(datasets), columns=["song", "codes"], filter=pc.field("split") == split
    ):
        column = batch.column("codes")
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        songs.extend(batch.column("song").to_pylist())
        codes.extend(to_codes(column))
    return songs, codes
