"""CLIPSonic's training examples from the video shards: 2 s log-mel crops of each video's audio, each
paired with the CLIP image embeddings of every frame of its video (training draws one at random,
thesis §7.2), in the video's own train/valid/test split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from assets.videos.tables import clip_model_of, frame_embeddings
from models import clipsonic as cso
from models.mel import log_mel

STRIDE = cso.CROP_FRAMES // 2  # crops overlap by half: twice the examples of a short video set
BANDS = cso.SPEC.n_mels
EMBED_DIM = 512

CROPS = pa.schema(
    [
        ("video", pa.string()), ("label", pa.string()), ("split", pa.string()), ("start_frame", pa.int32()),
        ("mel", pa.list_(pa.float32(), cso.CROP_FRAMES * BANDS)),
        ("frames", pa.list_(pa.list_(pa.float32(), EMBED_DIM))),  # the video's frame embeddings
        ("clip_model", pa.string()),
    ]
)  # fmt: skip


def crop_starts(frames: int) -> range:
    """First frames of the crops of a ``frames``-long mel; a mel shorter than one crop gives none."""
    return range(0, frames - cso.CROP_FRAMES + 1, STRIDE)


def crops_table(audio: pa.Table, embeddings: pa.Table) -> pa.Table:
    """``CROPS`` rows of every video of ``audio`` that has frame embeddings, from one CLIP model."""
    clip_model = clip_model_of(embeddings)
    frames = frame_embeddings(embeddings)
    rows = []
    for row in audio.to_pylist():
        if row["id"] not in frames:
            continue
        mel = log_mel(np.frombuffer(row["audio"], dtype=np.float32), cso.SPEC)
        vectors = frames[row["id"]][1].tolist()
        for start in crop_starts(len(mel)):
            rows.append({
                "video": row["id"], "label": row["label"] or "", "split": row["split"], "start_frame": start,
                "mel": mel[start : start + cso.CROP_FRAMES].ravel(), "frames": vectors, "clip_model": clip_model,
            })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=CROPS)


def mels_of(table: pa.Table) -> np.ndarray:
    """(n, CROP_FRAMES, BANDS) float32 mels of a table with a ``mel`` column (crops or samples)."""
    flat = table.column("mel").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(table.num_rows, cso.CROP_FRAMES, BANDS)


def frames_of(table: pa.Table) -> list[np.ndarray]:
    """Per crop, the (k, 512) frame embeddings of its video."""
    return [np.asarray(v, dtype=np.float32).reshape(-1, EMBED_DIM) for v in table.column("frames").to_pylist()]


def image_set(table: pa.Table) -> cso.MelSet:
    """CLIPSonic-IQ's examples: each crop conditioned on a frame of its own video."""
    return cso.MelSet(mels_of(table), frames_of(table))


def label_set(table: pa.Table, embeds: dict[str, np.ndarray]) -> cso.MelSet:
    """A text-to-audio baseline's examples: each crop conditioned on its label's text embedding."""
    return cso.MelSet(mels_of(table), [embeds[label][None] for label in table.column("label").to_pylist()])


def labels_of(table: pa.Table) -> list[str]:
    return sorted(set(table.column("label").to_pylist()) - {""})


def split(table: pa.Table, name: str, labelled: bool = False) -> pa.Table:
    """The rows of one split (only those with a label when ``labelled``)."""
    mask = np.asarray(table.column("split").to_pylist()) == name
    if labelled:
        mask &= np.asarray(table.column("label").to_pylist()) != ""
    return table.filter(pa.array(mask))


def first_mask(labels: Sequence[str], count: int) -> np.ndarray:
    """True for the first ``count`` items of each label, in order: a fixed, balanced subset."""
    seen: dict[str, int] = {}
    keep = np.zeros(len(labels), dtype=bool)
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        keep[i] = seen[label] <= count
    return keep


def per_label(table: pa.Table, count: int) -> pa.Table:
    """The first ``count`` crops of each label, in table order."""
    return table.filter(pa.array(first_mask(table.column("label").to_pylist(), count)))


def prompts(labels: Sequence[str], template: str) -> list[str]:
    return [template.format(label) for label in labels]


def label_images(table: pa.Table) -> dict[str, np.ndarray]:
    """label -> the (k, 512) embeddings of every frame of its videos, each video's frames once: the
    image targets the diffusion prior learns to reach from the label's text."""
    first: dict[str, tuple[str, list]] = {}
    for video, label, frames in zip(*(table.column(c).to_pylist() for c in ("video", "label", "frames"))):
        if label and video not in first:
            first[video] = (label, frames)
    out: dict[str, list] = {}
    for label, frames in first.values():
        out.setdefault(label, []).extend(frames)
    return {label: np.asarray(v, dtype=np.float32).reshape(-1, EMBED_DIM) for label, v in sorted(out.items())}
