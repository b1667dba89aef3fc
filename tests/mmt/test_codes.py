import muspy
import numpy as np
import pyarrow as pa
import pytest

from assets.core.rejects import Reject
from assets.mmt import codes
from assets.scores.datasets import ScoreItem
from assets.scores.ingest import music_to_rows
from models import mmt
from storage import shards


def row(song: str, n_beats: int) -> dict:
    return {"dataset": "toy", "song": song, "split": "train", "n_events": n_beats + 4, "n_notes": n_beats,
            "n_beats": n_beats, "codes": np.zeros((n_beats + 4, 6), np.int16).tolist()}  # fmt: skip


def test_write_encoded_streams_rows_and_returns_rejects_and_beats(tmp_path):
    rows = [row("a", 3), Reject("toy", "drums", "mmt_encode", "EncodingError", "drums only"), row("b", 5)]
    with shards.ShardWriter(str(tmp_path), codes.ASSET, "toy", codes.CODES, rows_per_shard=1) as writer:
        rejects, beats = codes.write_encoded(rows, writer)
    assert [r.item for r in rejects] == ["drums"] and beats == [3, 5]
    table = shards.read_table(str(tmp_path), codes.ASSET, "toy")
    assert table.column("song").to_pylist() == ["a", "b"]
    assert [len(c) for c in codes.to_codes(table.column("codes").combine_chunks())] == [7, 9]


def test_length_stats_count_the_songs_a_window_moves_over():
    assert codes.length_stats([10, 1024, 500, 256], 256) == {"mean_beats": 447.5, "songs_longer_than_window": 2}
    assert codes.length_stats([], 256) == {"mean_beats": 0.0, "songs_longer_than_window": 0}


def notes_table(name: str, n_notes: int, beats_apart: float = 1.0, is_drum: bool = False) -> pa.Table:
    step = int(24 * beats_apart)
    track = muspy.Track(program=0, is_drum=is_drum, notes=[muspy.Note(step * i, 60 + i % 12, 24, 80) for i in range(n_notes)])
    music = muspy.Music(resolution=24, tempos=[muspy.Tempo(0, 120.0)], tracks=[track])
    item = ScoreItem("toy", name, name, "midi")
    return music_to_rows(music, item, "sha").notes


SONGS = {
    "kept": notes_table("kept", 60),  # 60 notes over 60 beats
    "few_notes": notes_table("few_notes", 49, beats_apart=2.0),  # 98 beats but 49 notes
    "short": notes_table("short", 80, beats_apart=0.25),  # 80 notes in 20 beats
    "drums": notes_table("drums", 60, is_drum=True),
}


def encoded(profile: str) -> dict[str, dict | Reject]:
    batches = pa.concat_tables(SONGS.values()).to_batches(max_chunksize=37)
    splits = dict.fromkeys(SONGS, "train")
    out = codes.encode_songs("toy", batches, splits, mmt.PREPARATIONS[profile])
    return {(r.item if isinstance(r, Reject) else r["song"]): r for r in out}


def test_paper_profile_drops_songs_as_the_published_preparation_does():
    out = encoded("paper")
    assert out["kept"]["n_notes"] == 60 and out["kept"]["n_beats"] == 60
    few, short, drums = out["few_notes"], out["short"], out["drums"]
    assert (few.stage, few.error_type) == ("mmt_prepare", "SongDropped") and "49 encodable notes" in few.message
    assert (short.stage, short.error_type) == ("mmt_prepare", "SongDropped") and "ends at beat 20" in short.message
    assert (drums.stage, drums.error_type) == ("mmt_encode", "EncodingError")


def test_smoke_profile_keeps_every_song_that_encodes():
    out = encoded("smoke")
    assert {name for name, r in out.items() if isinstance(r, Reject)} == {"drums"}
    assert out["few_notes"]["n_notes"] == 49 and out["short"]["n_beats"] == 20


@pytest.mark.parametrize("beats, dropped", [(39.9, True), (40, False), (8000, False), (8000.1, True)])
def test_song_length_bounds_are_ten_to_two_thousand_bars(beats, dropped):
    rules = mmt.PREPARATIONS["paper"]
    if dropped:
        with pytest.raises(mmt.SongDropped, match="ends at beat"):
            mmt.check_song(100, beats, rules)
    else:
        mmt.check_song(100, beats, rules)
