import io
from pathlib import Path

import librosa
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from assets.violin import clips as cl
from assets.violin.alignment import read_alignment_csv
from assets.violin.render import tempo_for
from assets.violin.sources import load_slice
from models.mel import HOP, N_MELS, SAMPLE_RATE, log_mel

SR = SAMPLE_RATE
CENTRES = librosa.mel_frequencies(N_MELS + 2, fmax=SR / 2)[1:-1]  # of the mel bands
LEAD_IN = 0.31  # keeps every note time off a half frame, so the expected frames below are unambiguous

# onset, offset (ticks at 24 per quarter), pitch, velocity; at 120 qpm a tick lasts 1/48 s
NOTES = np.array([
    [0, 24, 69, 60],
    [24, 48, 72, 61],
    [48, 96, 76, 62],
    [216, 246, 64, 63],  # 4.81-5.435 s: sounds across the first clip boundary
    [264, 288, 74, 64],
    [264, 288, 78, 65],  # a chord
    [336, 360, 71, 66],
    [432, 456, 67, 67],
    # nothing in 10-15 s
    [744, 792, 79, 68],
    [792, 840, 81, 69],
])
STARTS, ENDS = (LEAD_IN + NOTES[:, i] / 48.0 for i in (0, 1))


def tones(starts: np.ndarray, ends: np.ndarray, pitches: np.ndarray, seconds: float) -> np.ndarray:
    """Sine tones with 5 ms ramps, silence elsewhere."""
    audio = np.zeros(round(seconds * SR), dtype=np.float32)
    for start, end, pitch in zip(starts, ends, pitches):
        a, b = round(start * SR), min(round(end * SR), len(audio))
        t = np.arange(b - a) / SR
        ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.005)
        audio[a:b] += 0.3 * ramp * np.sin(2 * np.pi * librosa.midi_to_hz(pitch) * t)
    return audio


@pytest.fixture(scope="module")
def recording() -> np.ndarray:
    return tones(STARTS, ENDS, NOTES[:, 2], 18.0)  # three whole clips and a 3 s tail


@pytest.fixture(scope="module")
def rows(recording: np.ndarray) -> list[dict]:
    return cl.clip_rows("violinist_bwv1_mov1", recording, NOTES, STARTS, ENDS, "Some Violinist", 120.0)


def test_clips_hold_the_notes_sounding_in_them(rows):
    # clip 2 (10-15 s) has no notes; the 3 s tail becomes a padded clip 3
    assert [r["clip"] for r in rows] == [0, 1, 3]
    assert [r["start_s"] for r in rows] == [0.0, 5.0, 15.0]
    assert [r["pitch"] for r in rows] == [[69, 72, 76, 64], [64, 74, 78, 71, 67], [79, 81]]
    assert rows[1]["velocity"] == [63, 64, 65, 66, 67]
    assert rows[1]["onset_beat"] == [0.0, 2.0, 2.0, 5.0, 9.0]
    assert rows[1]["duration_beat"] == [1.25, 1.0, 1.0, 1.0, 1.0]
    # frame t is centred on sample t * HOP: 0.31 s -> 19.375 -> 19; the boundary note is clamped
    assert rows[0]["onset_frame"] == [19, 51, 82, 301]
    assert rows[0]["offset_frame"] == [51, 82, 144, cl.CLIP_FRAMES]
    assert rows[1]["onset_frame"] == [0, 51, 51, 144, 269]
    assert rows[1]["offset_frame"] == [27, 82, 82, 176, 301]
    assert rows[2]["onset_frame"] == [51, 113] and rows[2]["offset_frame"] == [113, 176]
    for r in rows:
        assert r["performer"] == "Some Violinist" and r["qpm"] == 120.0
        assert r["n_frames"] == cl.CLIP_FRAMES == 313
        assert len(r["mel"]) == 313 * N_MELS * 4 and len(r["audio"]) == cl.CLIP_SAMPLES * 2


def test_mel_is_the_log_mel_of_the_stored_audio_and_notes_start_at_their_frames(rows, recording):
    for r in rows:
        audio = cl.decode_audio(r["audio"])
        mel = cl.decode_mel(r["mel"], r["n_frames"])
        np.testing.assert_array_equal(mel, log_mel(audio))
        a = round(r["start_s"] * SR)
        real = recording[a:a + cl.CLIP_SAMPLES]
        np.testing.assert_allclose(audio[:len(real)], real, atol=0.5 / cl.PCM_SCALE + 1e-7)
        assert not audio[len(real):].any()
        # the frame centred on a note's start holds about half of its sustained energy in its band
        bands = np.abs(CENTRES[:, None] - librosa.midi_to_hz(r["pitch"])).argmin(axis=0)
        for onset, offset, band in zip(r["onset_frame"], r["offset_frame"], bands):
            if onset > 0 and offset - onset > 8:
                half = mel[onset + 6, band] - np.log(2)
                assert mel[onset - 1, band] < half < mel[onset + 1, band]


def test_note_order_does_not_depend_on_the_input_order(rows, recording):
    shuffled = np.random.default_rng(0).permutation(len(NOTES))
    again = cl.clip_rows("violinist_bwv1_mov1", recording, NOTES[shuffled], STARTS[shuffled], ENDS[shuffled],
                         "Some Violinist", 120.0)
    assert again == rows
    for r in rows:
        assert r["onset_beat"] == sorted(r["onset_beat"])


def test_rows_survive_parquet_and_become_clips(rows, recording):
    other = cl.clip_rows("another_bwv1_mov1", recording[: 8 * SR], NOTES, STARTS, ENDS, "Another Violinist", 96.5)
    table = pa.Table.from_pylist(rows + other, schema=cl.CLIPS)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    table = pq.read_table(io.BytesIO(buffer.getvalue()))
    assert table.schema.equals(cl.CLIPS)

    performers = cl.performer_vocabulary(table)
    assert performers == ["Another Violinist", "Some Violinist"]
    clips = cl.to_clips(table, performers)
    assert len(clips) == len(rows) + len(other) == 5
    for clip, r in zip(clips, rows + other):
        np.testing.assert_array_equal(clip.mel, log_mel(cl.decode_audio(r["audio"])))
        assert clip.mel.shape == (313, N_MELS) and clip.mel.dtype == np.float32 and clip.mel.flags.writeable
        np.testing.assert_array_equal(clip.pitch, r["pitch"])
        np.testing.assert_array_equal(clip.onset_beat, np.float32(r["onset_beat"]))
        np.testing.assert_array_equal(clip.duration_beat, np.float32(r["duration_beat"]))
        np.testing.assert_array_equal(clip.onset_frame, r["onset_frame"])
        np.testing.assert_array_equal(clip.offset_frame, r["offset_frame"])
        assert clip.pitch.dtype == clip.onset_frame.dtype == clip.offset_frame.dtype == np.int64
        assert clip.performer == performers.index(r["performer"]) and clip.qpm == r["qpm"]

    # a slice keeps its list offsets into the whole column
    tail = cl.to_clips(table.slice(2), performers)
    for a, b in zip(tail, clips[2:]):
        np.testing.assert_array_equal(a.pitch, b.pitch)
        np.testing.assert_array_equal(a.onset_frame, b.onset_frame)
    with pytest.raises(ValueError, match="Some Violinist"):
        cl.to_clips(table, ["Another Violinist"])


def test_split_is_stable_per_clip_and_about_a_tenth():
    recordings = [f"performer-{i}_bwv{i}" for i in range(1000)]
    splits = {r: cl.assign_splits(r, range(20)) for r in recordings}
    assert splits == {r: cl.assign_splits(r, range(20)) for r in reversed(recordings)}
    share = np.mean([s == "valid" for split in splits.values() for s in split])
    assert 0.09 < share < 0.14
    assert all(split.count("valid") >= 2 for split in splits.values())
    assert any(cl.assign_splits(r, range(20), seed=1) != splits[r] for r in recordings[:20])
    assert cl.assign_splits("x", range(9), valid_share=0.0) == ["train"] * 9
    # below 10 clips nothing is made up, so single clips show the hash rule; a recording of 20 keeps
    # those clips valid and adds clips only up to two
    for r in recordings[:100]:
        alone = [cl.assign_splits(r, [i])[0] for i in range(20)]
        assert all(s == "valid" for a, s in zip(alone, splits[r]) if a == "valid")
        assert splits[r].count("valid") == max(alone.count("valid"), 2)


def test_rows_carry_the_split_of_their_clip(rows):
    assert [r["split"] for r in rows] == cl.assign_splits("violinist_bwv1_mov1", [0, 1, 3])


def test_a_short_tail_is_dropped_and_a_long_one_padded():
    note = np.array([[0, 48, 69, 64]])
    padded = cl.clip_rows("r", tones([0.5], [1.5], [69], 3.0), note, [0.5], [1.5], "p", 60.0)
    assert len(padded) == 1 and padded[0]["n_frames"] == cl.CLIP_FRAMES
    assert not cl.decode_audio(padded[0]["audio"])[3 * SR:].any()
    assert cl.clip_rows("r", tones([0.5], [1.5], [69], 2.0), note, [0.5], [1.5], "p", 60.0) == []
    # 7 s: one clip, the note in the dropped 2 s tail goes nowhere
    notes = np.array([[0, 48, 69, 64], [240, 288, 72, 64]])
    seven = cl.clip_rows("r", tones([0.5, 5.5], [1.5, 6.5], [69, 72], 7.0), notes, [0.5, 5.5], [1.5, 6.5], "p", 60.0)
    assert [r["clip"] for r in seven] == [0] and seven[0]["pitch"] == [69]


def test_mismatched_alignments_are_refused(recording):
    with pytest.raises(ValueError, match="10 notes but 9 starts"):
        cl.clip_rows("r", recording, NOTES, STARTS[:9], ENDS[:9], "p", 120.0)


def test_preview_is_a_png(rows):
    png = cl.clip_preview_png(cl.to_clips(pa.Table.from_pylist(rows, schema=cl.CLIPS), ["Some Violinist"])[1], "clip 1")
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_clips_of_a_sample_movement_cover_it(sample_dir: Path, sample_recordings, sample_notes):
    recording = min(sample_recordings, key=lambda r: r.seconds)
    notes = sample_notes[recording.id]
    starts, ends = read_alignment_csv(sample_dir / "alignments" / f"{recording.id}.csv").T
    audio = load_slice(recording.path, recording.start, recording.end)
    rows = cl.clip_rows(recording.id, audio, notes, starts, ends, recording.performer,
                        tempo_for(notes, recording.seconds))

    whole, tail = divmod(len(audio), cl.CLIP_SAMPLES)
    assert [r["clip"] for r in rows] == list(range(whole + (tail >= cl.CLIP_SAMPLES // 2)))
    n = min(len(audio), len(rows) * cl.CLIP_SAMPLES)
    stored = np.concatenate([cl.decode_audio(r["audio"]) for r in rows])[:n]
    np.testing.assert_allclose(stored, np.clip(audio[:n], -1, 1), atol=0.5 / cl.PCM_SCALE + 1e-7)

    covered = set()
    for r in rows:
        t0 = r["start_s"]
        chosen = np.flatnonzero((starts < t0 + cl.CLIP_SECONDS) & ((ends > t0) | (starts >= t0)))
        covered.update(chosen.tolist())
        assert r["pitch"] == notes[chosen, 2].tolist()
        np.testing.assert_array_equal(r["onset_beat"], (notes[chosen, 0] - notes[chosen[0], 0]) / 24)
        np.testing.assert_array_equal(r["duration_beat"], (notes[chosen, 1] - notes[chosen, 0]) / 24)
        inside = starts[chosen] >= t0
        exact = (starts[chosen][inside] - t0) * SR / HOP
        assert np.all(np.abs(np.array(r["onset_frame"])[inside] - exact) <= 0.5)
        assert min(r["onset_frame"]) >= 0 and max(r["offset_frame"]) <= r["n_frames"]
    assert covered == set(range(len(notes)))
    assert {r["split"] for r in rows} == {"train", "valid"}


def test_split_counts_and_first_clip_preview(rows):
    table = pa.Table.from_pylist(rows, schema=cl.CLIPS)
    counts = cl.split_counts(table)
    assert sum(counts.values()) == len(rows) and set(counts) <= {"train", "valid"}
    assert Image.open(io.BytesIO(cl.first_clip_png(table, "clip 0"))).format == "PNG"
    assert cl.first_clip_png(cl.CLIPS.empty_table(), "none") is None
