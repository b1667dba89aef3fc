"""CLIPSonic's crops and test queries: what each crop is paired with, and what each mode asks."""

import numpy as np
import pyarrow as pa
import pytest

from assets.clipsonic import crops
from assets.clipsonic import queries as qs
from assets.videos import tables
from models import clipsonic as cso
from models.mel import log_mel

RATE = 16_000


def audio_table(videos: dict[str, tuple[str, str, np.ndarray]]) -> pa.Table:
    rows = [(vid, label, split, audio) for vid, (label, split, audio) in videos.items()]
    return tables.audio_table(({"id": v, "label": label, "split": split}, audio) for v, label, split, audio in rows)


def embeddings_table(frames: dict[str, int], model: str = "m") -> tuple[pa.Table, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    vectors = {v: rng.standard_normal((n, 512)).astype(np.float32) for v, n in frames.items()}
    frame_rows = pa.table({"video": [v for v, n in frames.items() for _ in range(n)],
                           "timestamp": [float(t) for n in frames.values() for t in range(n)]})  # fmt: skip
    return tables.embeddings_table(frame_rows, np.concatenate(list(vectors.values())), model), vectors


def tone(seconds: float, hz: float) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE)).astype(np.float32)


def test_crops_cover_each_video_with_its_frames_and_split():
    audio = audio_table({"a": ("violin", "train", tone(5.0, 440)), "b": ("flute", "test", tone(3.0, 880)),
                         "c": ("cello", "train", tone(1.0, 220))})  # fmt: skip
    embeddings, vectors = embeddings_table({"a": 5, "b": 3, "c": 1})
    table = crops.crops_table(audio, embeddings)
    frames_a = len(log_mel(tone(5.0, 440), cso.SPEC))
    starts = list(crops.crop_starts(frames_a))
    assert starts == list(range(0, frames_a - 64 + 1, 32)) and len(starts) >= 3
    a = table.filter(pa.compute.equal(table.column("video"), "a"))
    assert a.column("start_frame").to_pylist() == starts
    np.testing.assert_array_equal(crops.mels_of(a)[1], log_mel(tone(5.0, 440), cso.SPEC)[32:96])
    np.testing.assert_array_equal(crops.frames_of(a)[0], vectors["a"])
    assert set(table.column("video").to_pylist()) == {"a", "b"}  # c is shorter than one crop
    assert crops.split(table, "test").column("label").to_pylist() == ["flute"] * crops.split(table, "test").num_rows
    assert set(crops.label_images(table)) == {"violin", "flute"} and crops.label_images(table)["flute"].shape == (3, 512)


def test_two_clip_models_in_one_table_are_refused():
    audio = audio_table({"a": ("violin", "train", tone(3.0, 440)), "b": ("flute", "train", tone(3.0, 880))})
    first, _ = embeddings_table({"a": 3}, "one")
    second, _ = embeddings_table({"b": 3}, "two")
    with pytest.raises(tables.MixedEmbeddings, match="one.*two"):
        crops.crops_table(audio, pa.concat_tables([first, second]))


def test_first_mask_keeps_a_balanced_subset_in_order():
    labels = ["a", "b", "a", "a", "b", "c"]
    assert crops.first_mask(labels, 2).tolist() == [True, True, True, False, True, True]


def test_queries_of_each_mode():
    rng = np.random.default_rng(1)
    frames = [rng.standard_normal((4, 512)).astype(np.float32) for _ in range(6)]
    labels = ["violin", "flute", "cello", "violin", "flute", "cello"]
    iq = qs.image_queries(frames, labels, seed=0)
    assert all(any(np.array_equal(row, f) for f in frame) for row, frame in zip(iq.conditions, frames))
    assert qs.similarity(iq) == pytest.approx(1.0)
    shuffled = qs.shuffled_queries(iq, seed=0)
    assert shuffled.labels == labels and sorted(map(tuple, shuffled.conditions)) == sorted(map(tuple, iq.conditions))
    assert qs.similarity(shuffled) < 1.0
    texts = {label: rng.standard_normal(512).astype(np.float32) for label in set(labels)}
    zs = qs.label_queries("zs", texts, iq)
    np.testing.assert_array_equal(zs.conditions[3], texts["violin"])
    assert qs.MODEL_OF["sd"] == "iq" and qs.MODEL_OF["clip_tta"] == "clip_tta"
