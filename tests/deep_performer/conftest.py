import librosa
import numpy as np
import pyarrow as pa
import pytest

from assets.violin import clips
from models.mel import SAMPLE_RATE

# onset, offset (ticks at 24 per quarter), pitch, velocity; at 120 qpm a tick lasts 1/48 s
NOTES = np.array([[48 * i, 48 * i + 40, 62 + 2 * (i % 6), 80] for i in range(10)])


def tones(notes: np.ndarray, seconds: float) -> np.ndarray:
    """Sine tones at the notes' times (120 qpm), silence elsewhere."""
    audio = np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)
    for on, off, pitch, _ in notes:
        a, b = round(on / 48 * SAMPLE_RATE), round(off / 48 * SAMPLE_RATE)
        audio[a:b] += 0.3 * np.sin(2 * np.pi * librosa.midi_to_hz(pitch) * np.arange(b - a) / SAMPLE_RATE)
    return audio


@pytest.fixture(scope="session")
def clip_table() -> pa.Table:
    """Two 10 s recordings by two performers cut into clips (all of them train; the split does not matter here)."""
    rows = []
    for recording, performer in (("anna_bwv1_mov1", "Anna"), ("ben_bwv1_mov1", "Ben")):
        starts, ends = NOTES[:, 0] / 48, NOTES[:, 1] / 48
        rows += clips.clip_rows(recording, tones(NOTES, 10.0), NOTES, starts, ends, performer, 120.0, valid_share=0.0)
    return pa.Table.from_pylist(rows, schema=clips.CLIPS)
