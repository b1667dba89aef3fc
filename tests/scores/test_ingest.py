import hashlib
import os

import muspy
import numpy as np
import pyarrow as pa
import pytest

from assets.core.rejects import Reject
from assets.scores import ingest, tables
from assets.scores.datasets import ScoreItem
from storage import shards


def make_midi(path, notes, qpm=120.0, resolution=24):
    music = muspy.Music(
        resolution=resolution,
        tempos=[muspy.Tempo(time=0, qpm=qpm)],
        tracks=[muspy.Track(program=40, name="Violin", notes=[muspy.Note(t, p, d, 80) for t, p, d in notes])],
    )
    music.write_midi(str(path))
    return str(path)


def test_tick_seconds_follows_tempo_changes():
    ticks = np.array([0, 24, 48, 72, 96])
    # 120 qpm for the first two beats, then 60 qpm.
    seconds = ingest.tick_seconds(ticks, np.array([0, 48]), np.array([120.0, 60.0]), 24)
    np.testing.assert_allclose(seconds, [0.0, 0.5, 1.0, 2.0, 3.0])


def test_tick_seconds_defaults_to_120_qpm_without_tempo():
    seconds = ingest.tick_seconds(np.array([48]), np.array([], dtype=np.int64), np.array([]), 24)
    assert seconds[0] == pytest.approx(1.0)


def test_music_to_rows_columns(tmp_path):
    path = make_midi(tmp_path / "a.mid", [(0, 60, 24), (24, 64, 12), (60, 67, 36)], qpm=60.0)
    item = ScoreItem("toy", "a.mid", path, "midi")
    parsed = ingest.parse_item(item)
    assert isinstance(parsed, ingest.Parsed), parsed
    notes = parsed.notes.to_pydict()
    assert parsed.notes.schema == tables.NOTES
    assert notes["pitch"] == [60, 64, 67]
    assert notes["onset"] == [0, 24, 60]
    assert notes["beat"] == [0, 1, 2]
    assert notes["position"] == [0, 0, 12]
    np.testing.assert_allclose(notes["onset_seconds"], [0.0, 1.0, 2.5])
    np.testing.assert_allclose(notes["duration_seconds"], [1.0, 0.5, 1.5])
    assert set(notes["program"]) == {40}
    song = parsed.song
    assert song["n_notes"] == 3 and song["length_beats"] == pytest.approx(4.0)
    assert song["length_seconds"] == pytest.approx(4.0)
    assert song["initial_tempo"] == pytest.approx(60.0)
    assert song["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()


def bad_items(tmp_path):
    good = make_midi(tmp_path / "good.mid", [(0, 60, 24), (24, 62, 24)])
    raw = open(good, "rb").read()
    (tmp_path / "truncated.mid").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "corrupt.mid").write_bytes(b"MThd" + np.random.default_rng(0).bytes(200))
    (tmp_path / "empty.mid").write_bytes(b"")
    (tmp_path / "text.mid").write_text("this is not music")
    (tmp_path / "bad.musicxml").write_text("<score-partwise><part-list><oops></score-partwise>")
    big = tmp_path / "huge.mid"
    with open(big, "wb") as f:
        f.truncate(200 * 1024 * 1024)
    locked = tmp_path / "locked.mid"
    locked.write_bytes(raw)
    locked.chmod(0)
    names = ["good.mid", "truncated.mid", "corrupt.mid", "empty.mid", "text.mid", "bad.musicxml", "huge.mid", "locked.mid"]
    fmt = {"mid": "midi", "musicxml": "musicxml"}
    return [ScoreItem("toy", n, str(tmp_path / n), fmt[n.rsplit(".", 1)[1]]) for n in names]


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_files_become_rejects_and_the_rest_completes(tmp_path, workers):
    items = bad_items(tmp_path)
    results = list(ingest.parse_all(items, workers=workers))
    assert len(results) == len(items)
    by_item = {item.item_id: result for item, result in zip(items, results)}
    assert isinstance(by_item["good.mid"], ingest.Parsed)
    rejects = {r.item: (r.stage, r.error_type) for r in results if isinstance(r, Reject)}
    # Mode 000 stops every process but root's: readability is what this process may read.
    readable = os.access(tmp_path / "locked.mid", os.R_OK)
    assert rejects == {
        "truncated.mid": ("parse", "EOFError"),
        "corrupt.mid": ("parse", "EOFError"),
        "empty.mid": ("file", "EmptyFile"),
        "text.mid": ("parse", "OSError"),
        "bad.musicxml": ("parse", "ParseError"),
        "huge.mid": ("file", "FileTooLarge"),
    } | ({} if readable else {"locked.mid": ("file", "PermissionError")})
    assert by_item["huge.mid"].message.endswith(f"huge.mid has {200 * 1024 * 1024} bytes > 50000000")
    if readable:
        assert by_item["locked.mid"].notes == by_item["good.mid"].notes.set_column(
            0, "song", pa.array(["locked.mid"] * 2)
        )
    else:
        assert by_item["locked.mid"].message == f"no read permission: {tmp_path / 'locked.mid'}"
    assert by_item["empty.mid"].message == f"empty file: {tmp_path / 'empty.mid'}"
    muspy_part, music21_part = by_item["bad.musicxml"].message.removeprefix("cannot parse bad.musicxml: ").split("; ")
    assert muspy_part.startswith("muspy: ParseError: ") and music21_part.startswith("music21: ParseError: ")


def test_midi_claiming_missing_tracks_is_rejected_for_that_reason(tmp_path):
    make_midi(tmp_path / "good.mid", [(0, 60, 24)])
    (tmp_path / "liar.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x9c\x40\x00\x18")  # 40000 tracks, none present
    items = [ScoreItem("toy", n, str(tmp_path / n), "midi") for n in ("good.mid", "liar.mid")]
    good, liar = ingest.parse_all(items, workers=1)
    assert isinstance(good, ingest.Parsed)
    assert isinstance(liar, Reject) and (liar.stage, liar.error_type) == ("parse", "TrackCountMismatch")
    assert "MIDI header claims 40000 tracks but the file holds 0" in liar.message


def test_results_keep_item_order_across_workers(tmp_path):
    items = [
        ScoreItem("toy", f"{i:03d}.mid", make_midi(tmp_path / f"{i:03d}.mid", [(0, 40 + i, 24)]), "midi")
        for i in range(24)
    ]
    results = list(ingest.parse_all(items, workers=2))
    assert [r.song["song"] for r in results] == [i.item_id for i in items]
    assert [r.notes.column("pitch")[0].as_py() for r in results] == [40 + i for i in range(24)]


def test_score_items_survive_the_score_files_table(tmp_path):
    items = [ScoreItem("toy", "a.mid", "/a.mid", "midi"), ScoreItem("toy", "b.abc#X7", "/b.abc", "abc", 7)]
    frame = ingest.items_frame(items)
    assert list(frame.columns) == ingest.ITEM_COLUMNS and frame["number"].isna().tolist() == [True, False]
    assert ingest.frame_items(frame) == items
    assert ingest.frame_items(ingest.items_frame([])) == []


def test_write_parsed_streams_notes_and_returns_songs_and_rejects_in_order(tmp_path):
    items = [
        ScoreItem("toy", "a.mid", make_midi(tmp_path / "a.mid", [(0, 60, 24), (24, 62, 24)]), "midi"),
        ScoreItem("toy", "missing.mid", str(tmp_path / "missing.mid"), "midi"),
        ScoreItem("toy", "b.mid", make_midi(tmp_path / "b.mid", [(0, 67, 24)]), "midi"),
    ]
    root = str(tmp_path / "datasets")
    with shards.ShardWriter(root, "notes", "toy", tables.NOTES, rows_per_shard=2) as writer:
        songs, rejects = ingest.write_parsed(ingest.parse_all(items, workers=1), writer)
    assert [s["song"] for s in songs] == ["a.mid", "b.mid"]
    assert [r.item for r in rejects] == ["missing.mid"]
    notes = shards.read_table(root, "notes", "toy")
    assert writer.manifest.rows == 3 and notes.column("pitch").to_pylist() == [60, 62, 67]
