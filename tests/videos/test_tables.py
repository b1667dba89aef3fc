import numpy as np
import pytest

from assets.videos import tables


def test_audio_rows_carry_the_samples_and_their_length():
    done = [({"id": "a", "label": "violin", "split": "train"}, np.ones(8000, np.float32)), ({"id": "b", "label": None, "split": "test"}, np.zeros(16000))]
    table = tables.audio_table(done)
    assert table.schema == tables.AUDIO and table.column("seconds").to_pylist() == [0.5, 1.0]
    assert np.frombuffer(table.column("audio")[1].as_py(), np.float32).shape == (16000,)


def test_frame_rows_are_one_per_frame_and_empty_without_videos():
    done = [({"id": "a"}, [(0.0, b"j0"), (1.0, b"j1")]), ({"id": "b"}, [(0.0, b"k0")])]
    table = tables.frames_table(done)
    assert table.to_pylist()[1] == {"video": "a", "timestamp": 1.0, "jpeg": b"j1"} and table.num_rows == 3
    assert tables.frames_table([]).schema == tables.FRAMES


def test_embedding_rows_line_up_with_their_frames():
    frames = tables.frames_table([({"id": "a"}, [(0.0, b""), (1.0, b"")])])
    vectors = np.eye(2, tables.EMBEDDING_DIM, dtype=np.float32) * 2
    table = tables.embeddings_table(frames, vectors, "baton/small-clip")
    assert table.schema == tables.EMBEDDINGS and table.column("model").to_pylist() == ["baton/small-clip"] * 2
    assert table.column("embedding")[1].as_py()[1] == 2.0 and table.column("timestamp").to_pylist() == [0.0, 1.0]
    assert tables.mean_norm(vectors) == pytest.approx(2.0) and tables.mean_norm(np.zeros((0, 512))) == 0.0
