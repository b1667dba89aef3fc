"""MMT code shards: one row per whole song with its (n, 6) event codes, encoded from the note shards.

Songs are stored whole, as the published data preparation stores them, so that training draws
its 256-beat windows from anywhere in a song (``models.mmt.window``). Songs the MMT vocabulary
cannot express (drums only, no known instrument) and songs the profile's data preparation drops
(too few notes, too short or too long) become rejects with the reason instead of failing the
partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.core.rejects import Reject
from assets.scores.songs import iter_songs
from models import mmt
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
        ("n_beats", pa.int32()),
        ("codes", pa.list_(pa.list_(pa.int16(), len(mmt_encoding.FIELDS)))),
    ]
)


def encode_songs(
    dataset: str, batches: Iterable[pa.RecordBatch], splits: dict[str, str], rules: mmt.Preparation
) -> Iterator[dict | Reject]:
    """A code row per song of the streamed note rows, or a reject saying why it is left out."""
    for song, notes in iter_songs(batches):
        try:
            codes = mmt_encoding.encode(notes)
            n_notes = int((codes[:, 0] == mmt_encoding.TYPE_NOTE).sum())
            resolution = int(notes.column("resolution")[0].as_py())
            mmt.check_song(
                n_notes, mmt.end_beats(notes.column("onset").to_numpy(), notes.column("duration").to_numpy(), resolution), rules
            )
        except (mmt_encoding.EncodingError, mmt.SongDropped) as exc:
            stage = "mmt_encode" if isinstance(exc, mmt_encoding.EncodingError) else "mmt_prepare"
            yield Reject(dataset, song, stage, type(exc).__name__, str(exc))
            continue
        yield {
            "dataset": dataset,
            "song": song,
            "split": splits[song],
            "n_events": len(codes),
            "n_notes": n_notes,
            "n_beats": int(codes[-2, mmt_encoding.BEAT]),
            "codes": codes.tolist(),
        }


def write_encoded(rows: Iterable[dict | Reject], writer: shards.ShardWriter) -> tuple[list[Reject], list[int]]:
    """Stream the code rows into ``writer``; the rejects and every written song's beat count come back."""
    rejects, beats = [], []
    for row in rows:
        if isinstance(row, Reject):
            rejects.append(row)
        else:
            beats.append(row["n_beats"])
            writer.write([row])
    return rejects, beats


def length_stats(beats: Sequence[int], max_beat: int) -> dict[str, float | int]:
    """Mean song length in beats and how many songs outlast one training window, so windows move."""
    return {
        "mean_beats": float(np.mean(beats)) if len(beats) else 0.0,
        "songs_longer_than_window": int(sum(n > max_beat for n in beats)),
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
