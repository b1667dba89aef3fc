import numpy as np
import pyarrow as pa
import pytest

from assets.clipsep import separation_data
from assets.videos.tables import AUDIO, EMBEDDINGS, MixedEmbeddings
from models.clipsep import CLIP_SAMPLES, SAMPLE_RATE


def tables(seconds: float = 10.0, start: float = 2.0):
    """One 10 s video whose audio is its sample index and whose frame k's embedding is k * e_0."""
    audio = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float32)
    audio_table = pa.Table.from_pylist(
        [{"id": "v", "label": "flute", "split": "train", "sample_rate": SAMPLE_RATE, "seconds": seconds, "audio": audio.tobytes()},
         {"id": "w", "label": "oboe", "split": "test", "sample_rate": SAMPLE_RATE, "seconds": seconds, "audio": audio.tobytes()}],
        schema=AUDIO,
    )  # fmt: skip
    rows = []
    for k in range(int(seconds)):
        vector = np.zeros(512, np.float32)
        vector[0] = k
        rows.append({"video": "v", "timestamp": start + k, "embedding": vector.tolist(), "model": "m"})
    return audio_table, pa.Table.from_pylist(rows[::-1], schema=EMBEDDINGS)  # out of order on purpose


def test_windows_are_whole_clips_queried_by_the_frames_around_their_middle():
    audio, embeddings = tables()
    found = separation_data.sources(audio, embeddings, "train", {"v": 2.0})
    assert len(found) == 2  # 10 s holds two whole 65,535-sample windows
    for i, source in enumerate(found):
        assert source.audio[0] == i * CLIP_SAMPLES and len(source.audio) == CLIP_SAMPLES and source.label == "flute"
        middle = (i + 0.5) * CLIP_SAMPLES / SAMPLE_RATE  # seconds into the clip; frame k is at k seconds
        expected = sorted(np.argsort(np.abs(np.arange(10) - middle), kind="stable")[:3])
        assert source.query[:, 0].tolist() == expected
    assert separation_data.sources(audio, embeddings, "test") == []  # "w" has no frames


def test_split_sources_count_frames_from_each_clip_start_and_name_the_one_clip_model():
    audio, embeddings = tables()
    videos = pa.table({"id": ["v", "w"], "start": [2.0, 0.0]})
    found, model = separation_data.split_sources(audio, embeddings, videos, "train")
    assert model == "m" and [s.query[:, 0].tolist() for s in found] == [
        s.query[:, 0].tolist() for s in separation_data.sources(audio, embeddings, "train", {"v": 2.0})
    ]
    mixed = pa.concat_tables([embeddings, embeddings.set_column(3, "model", pa.array(["n"] * embeddings.num_rows))])
    with pytest.raises(MixedEmbeddings, match=r"\['m', 'n'\]"):
        separation_data.split_sources(audio, mixed, videos, "train")
