"""The shard schemas of the video lineage and the tables one batch's videos fill.

Audio travels as float32 mono sample bytes, frames as JPEG bytes and embeddings as fixed-size lists,
so the CLIPSep branch reads them back without knowing how they were made.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from assets.videos.media import SAMPLE_RATE

EMBEDDING_DIM = 512

VIDEOS = pa.schema(
    [
        ("id", pa.string()), ("label", pa.string()), ("path", pa.string()), ("start", pa.float64()),
        ("duration", pa.float64()), ("split", pa.string()), ("batch", pa.string()),
    ]
)  # fmt: skip
AUDIO = pa.schema(
    [
        ("id", pa.string()), ("label", pa.string()), ("split", pa.string()), ("sample_rate", pa.int32()),
        ("seconds", pa.float64()), ("audio", pa.binary()),  # float32 mono samples
    ]
)  # fmt: skip
FRAMES = pa.schema([("video", pa.string()), ("timestamp", pa.float64()), ("jpeg", pa.binary())])
EMBEDDINGS = pa.schema(
    [
        ("video", pa.string()), ("timestamp", pa.float64()), ("embedding", pa.list_(pa.float32(), EMBEDDING_DIM)),
        ("model", pa.string()),
    ]
)  # fmt: skip


def audio_table(done: Iterable[tuple[dict, np.ndarray]]) -> pa.Table:
    """Rows of ``AUDIO`` from (video row, 16 kHz samples) pairs."""
    rows = [
        {
            "id": video["id"], "label": video["label"], "split": video["split"], "sample_rate": SAMPLE_RATE,
            "seconds": len(audio) / SAMPLE_RATE, "audio": np.asarray(audio, dtype=np.float32).tobytes(),
        }
        for video, audio in done
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=AUDIO)


def frames_table(done: Iterable[tuple[dict, list[tuple[float, bytes]]]]) -> pa.Table:
    """Rows of ``FRAMES`` from (video row, [(timestamp, JPEG)]) pairs, one per frame."""
    rows = [{"video": video["id"], "timestamp": t, "jpeg": jpeg} for video, frames in done for t, jpeg in frames]
    return pa.Table.from_pylist(rows, schema=FRAMES)


def embeddings_table(frames: pa.Table, embeddings: np.ndarray, model: str) -> pa.Table:
    """One ``EMBEDDINGS`` row per frame of a ``FRAMES`` table, its embedding the row of the same index."""
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(embeddings).ravel(), pa.float32()), EMBEDDING_DIM)
    columns = {
        "video": frames.column("video"), "timestamp": frames.column("timestamp"), "embedding": vectors,
        "model": [model] * frames.num_rows,
    }  # fmt: skip
    return pa.table(columns, schema=EMBEDDINGS)


def mean_norm(embeddings: np.ndarray) -> float:
    """The embeddings' mean L2 norm (1 for CLIP's unit vectors; anything else means a broken model)."""
    return float(np.linalg.norm(embeddings, axis=1).mean()) if len(embeddings) else 0.0


def frame_embeddings(table: pa.Table) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per video, its frame timestamps (sorted) and (n, 512) embeddings."""
    timestamps = table.column("timestamp").to_numpy()
    vectors = np.asarray(table.column("embedding").combine_chunks().flatten().to_numpy(), dtype=np.float32)
    vectors = vectors.reshape(len(timestamps), -1) if len(timestamps) else vectors.reshape(0, 512)
    rows = defaultdict(list)
    for i, video in enumerate(table.column("video").to_pylist()):
        rows[video].append(i)
    out = {}
    for video, index in rows.items():
        index = np.asarray(index)[np.argsort(timestamps[index], kind="stable")]
        out[video] = (timestamps[index], vectors[index])
    return out


class MixedEmbeddings(ValueError):
    """Frame embeddings of more than one CLIP model: their queries would not share one space."""


def clip_model_of(embeddings: pa.Table) -> str:
    """The one CLIP model that embedded every frame of ``embeddings``."""
    models = set(embeddings.column("model").to_pylist())
    if len(models) != 1:
        raise MixedEmbeddings(f"clip_embeddings mixes CLIP models {sorted(models)}: re-embed every batch with one")
    return models.pop()
