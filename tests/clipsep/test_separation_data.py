import numpy as np
import pyarrow as pa
from transformers import CLIPImageProcessorPil, CLIPProcessor

from assets.clipsep import separation_data
from assets.videos.defs import AUDIO, EMBEDDINGS
from assets.clipsep.defs import text_sources
from models import clip_embed
from models.clipsep import CLIP_SAMPLES, SAMPLE_RATE, Source


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


def test_text_queries_come_from_a_semantic_clip_only(tmp_path):
    bundle = clip_embed.load_clip(clip_embed.SMALL_CLIP, "cpu")
    test = [Source(np.zeros(CLIP_SAMPLES, np.float32), np.ones((3, 512), np.float32), label) for label in ("flute", "oboe", "flute")]
    assert text_sources(test, clip_embed.SMALL_CLIP) is None
    bundle.model.save_pretrained(tmp_path)  # the same weights as a real checkpoint, which loads as semantic
    CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=bundle.tokenizer).save_pretrained(tmp_path)
    texts = text_sources(test, str(tmp_path))
    expected = clip_embed.embed_texts(bundle, ["flute", "oboe"])
    assert np.allclose(texts[0].query, expected[0], atol=1e-5) and np.allclose(texts[1].query, expected[1], atol=1e-5)
    assert np.array_equal(texts[0].query, texts[2].query) and [t.label for t in texts] == ["flute", "oboe", "flute"]
    assert text_sources([*test[:2], Source(test[0].audio, test[0].query, None)], str(tmp_path)) is None
