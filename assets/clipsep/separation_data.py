"""CLIPSep training and test examples from the video shards: clip-long windows of each video's audio,
each with the CLIP embeddings of the frames shown while it plays as its query."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from assets.videos import tables
from assets.videos.tables import frame_embeddings
from models.clipsep import CLIP_SAMPLES, SAMPLE_RATE, Source

QUERY_FRAMES = 3  # the paper's query: the mean embedding of three frames of the clip


def window_query(timestamps: np.ndarray, vectors: np.ndarray, start_s: float, seconds: float) -> np.ndarray:
    """(QUERY_FRAMES, 512): the frames nearest the window's middle, so they show what is playing then."""
    middle = start_s + seconds / 2
    nearest = np.argsort(np.abs(timestamps - middle), kind="stable")[:QUERY_FRAMES]
    return vectors[np.sort(nearest)]


def sources(audio: pa.Table, embeddings: pa.Table, split: str, video_start: dict[str, float] | None = None) -> list[Source]:
    """One Source per whole clip-long window of every video of ``split`` that has frame embeddings.

    Windows do not overlap, so test mixtures never share audio with each other's windows; a video
    shorter than one clip gives none. ``video_start`` maps a video to its clip start, in which frame
    timestamps are counted (0 when absent).
    """
    frames = frame_embeddings(embeddings)
    found = []
    for row in audio.to_pylist():
        if row["split"] != split or row["id"] not in frames:
            continue
        samples = np.frombuffer(row["audio"], dtype=np.float32)
        timestamps, vectors = frames[row["id"]]
        offset = (video_start or {}).get(row["id"], 0.0)
        for begin in range(0, len(samples) - CLIP_SAMPLES + 1, CLIP_SAMPLES):
            query = window_query(timestamps, vectors, offset + begin / SAMPLE_RATE, CLIP_SAMPLES / SAMPLE_RATE)
            found.append(Source(samples[begin : begin + CLIP_SAMPLES].copy(), query, row["label"]))
    return found


def split_sources(audio: pa.Table, embeddings: pa.Table, videos: pa.Table, split: str) -> tuple[list[Source], str]:
    """The split's windows over every video batch, frame timestamps counted from each video's clip
    start, and the one CLIP model that embedded their frames."""
    clip_model = tables.clip_model_of(embeddings)
    starts = {v["id"]: v["start"] for v in videos.select(["id", "start"]).to_pylist()}
    return sources(audio, embeddings, split, starts), clip_model
