from dataclasses import replace

import numpy as np

from assets.violin import tables
from assets.violin.manifests import Published
from assets.violin.sources import Recording

RECORDING = Recording(
    id="b", url=None, path="/b.wav", start=1.0, end=4.0, performer="P", work="BWV1001", movement=1, title="Adagio",
    score="bwv1001_mov1", score_path=None, repeat1=True, repeat2=None, baroque_tuning=False, collection="c",
    source_filename="b.wav", license="PD",
)  # fmt: skip
NOTES = np.array([[0, 24, 67, 80], [24, 36, 69, 81], [36, 72, 71, 82]], dtype=np.int64)
NOT_FOUND = Published(None, ("/m/alignments/x.csv",))


def test_recordings_round_trip_with_their_published_alignment_lookup():
    found = Published("/m/alignments/c/b.csv", ("/m/alignments/b.csv", "/m/alignments/c/b.csv"))
    table = tables.recordings_table([RECORDING, replace(RECORDING, id="a")], {"b": found, "a": NOT_FOUND}, "sample")
    assert table.schema == tables.RECORDING_ROWS
    rows = table.to_pylist()
    assert tables.recording_from_row(rows[0]) == (RECORDING, found)
    assert tables.recording_from_row(rows[1]) == (replace(RECORDING, id="a"), NOT_FOUND)


def test_a_reread_manifest_replaces_its_rows_and_keeps_the_others():
    lookups = dict.fromkeys("abc", NOT_FOUND)
    kept = tables.recordings_table([RECORDING, replace(RECORDING, id="a")], lookups, "first")
    new = tables.recordings_table(
        [replace(RECORDING, id="b", performer="Q"), replace(RECORDING, id="c")], lookups, "second"
    )
    merged = tables.merge_recordings(kept, new).to_pylist()
    assert [(r["id"], r["manifest"], r["performer"]) for r in merged] == [
        ("a", "first", "P"), ("b", "second", "Q"), ("c", "second", "P")
    ]
    assert tables.merge_recordings(None, new).column("id").to_pylist() == ["b", "c"]


def test_rows_kept_from_before_the_lookup_was_stored_read_back_with_nothing_searched():
    older = tables.recordings_table([replace(RECORDING, id="a")], {"a": NOT_FOUND}, "first")
    older = older.drop_columns("published_searched")
    merged = tables.merge_recordings(older, tables.recordings_table([RECORDING], {"b": NOT_FOUND}, "second"))
    assert merged.schema == tables.RECORDING_ROWS
    assert tables.recording_from_row(merged.to_pylist()[0])[1] == Published(None, ())


def test_audio_and_renders_read_back_as_the_float32_samples_written():
    audio = np.linspace(-1, 1, 100)
    table = tables.audio_table(RECORDING, audio)
    assert table.column("seconds")[0].as_py() == 3.0 and table.column("attribution")[0].as_py() == "P, PD"
    np.testing.assert_array_equal(tables.samples(table), audio.astype(np.float32))
    render = tables.render_table("b", 92.5, -1, "/sf.sf3", audio)
    assert render.schema == tables.RENDERS and render.column("transpose")[0].as_py() == -1
    np.testing.assert_array_equal(tables.samples(render), audio.astype(np.float32))


def test_notes_and_alignments_read_back_as_the_tick_notes_written():
    notes = tables.notes_table("b", NOTES)
    assert notes.schema == tables.NOTES and notes.column("recording").to_pylist() == ["b"] * 3
    np.testing.assert_array_equal(tables.note_array(notes), NOTES)
    aligned = tables.aligned_table(
        "b", "v2", NOTES, np.array([0.1, 0.6, 0.9]), np.array([0.6, 0.9, 1.8]), np.array([0.9, 0.2, 0.7])
    )
    assert aligned.schema == tables.ALIGNED
    np.testing.assert_array_equal(tables.note_array(aligned), NOTES)
    assert aligned.column("method").to_pylist() == ["v2"] * 3 and aligned.column("end").to_pylist()[-1] == 1.8
    assert aligned.column("confidence").to_pylist() == [0.9, 0.2, 0.7]
    assert tables.note_array(tables.NOTES.empty_table()).shape == (0, 4)
