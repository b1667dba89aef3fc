import numpy as np
import pyarrow as pa

from assets.cross_dataset import events
from assets.scores import songs as song_rows
from assets.scores import tables


def note_rows(song, notes, resolution=24):
    n = len(notes)
    return pa.table(
        {
            "song": [song] * n,
            "dataset": ["toy"] * n,
            "track": [t for t, *_ in notes],
            "part_name": [""] * n,
            "program": [0] * n,
            "is_drum": [False] * n,
            "resolution": [resolution] * n,
            "onset": [o for _, o, _, _ in notes],
            "duration": [d for _, _, d, _ in notes],
            "onset_seconds": [0.0] * n,
            "duration_seconds": [0.0] * n,
            "pitch": [p for *_, p in notes],
            "velocity": [64] * n,
            "beat": [0] * n,
            "position": [0] * n,
        },
        schema=tables.NOTES,
    )


def test_encode_is_muspy_event_representation_at_four_steps():
    # A quarter note C4 then an eighth note E4 one beat later, at resolution 24.
    codes = events.encode(note_rows("s", [(0, 0, 24, 60), (0, 24, 12, 64)]))
    note_on, note_off, shift = 0, 128, 256 - 1
    assert codes.tolist() == [
        note_on + 60, shift + 4, note_off + 60, note_on + 64, shift + 2, note_off + 64, events.VOCAB_SIZE - 1
    ]
    assert codes.max() < events.VOCAB_SIZE


def test_encode_merges_tracks_in_time():
    codes = events.encode(note_rows("s", [(0, 0, 24, 60), (1, 0, 24, 48)]))
    assert sorted(codes[:2].tolist()) == [48, 60]


def test_iter_songs_groups_rows_across_batches():
    table = pa.concat_tables([note_rows("a", [(0, i, 1, 60) for i in range(5)]), note_rows("b", [(0, 0, 1, 62)] * 3)])
    batches = table.to_batches(max_chunksize=2)
    grouped = list(song_rows.iter_songs(batches))
    assert [(s, t.num_rows) for s, t in grouped] == [("a", 5), ("b", 3)]


def test_assign_splits_is_seeded_and_order_free():
    songs = [f"s{i}" for i in range(100)]
    a = song_rows.assign_splits(songs, seed=0)
    b = song_rows.assign_splits(list(reversed(songs)), seed=0)
    c = song_rows.assign_splits(songs, seed=1)
    assert a == b and a != c
    counts = {k: list(a.values()).count(k) for k in song_rows.SPLITS}
    assert counts == {"train": 80, "valid": 10, "test": 10}
    assert np.unique(list(a.values())).tolist() == ["test", "train", "valid"]


def test_write_sequences_streams_a_row_per_song_and_summarises_lengths(tmp_path):
    from storage import shards

    songs = [("a", note_rows("a", [(0, 0, 24, 60)])), ("b", note_rows("b", [(0, 0, 24, 60), (0, 24, 24, 62)]))]
    splits = {"a": "train", "b": "test"}
    with shards.ShardWriter(str(tmp_path), "event_sequences", "toy", tables.EVENTS) as writer:
        lengths = events.write_sequences("toy", songs, splits, writer)
    rows = shards.read_table(str(tmp_path), "event_sequences", "toy").to_pylist()
    assert [(r["song"], r["split"], r["n_events"]) for r in rows] == [("a", "train", 4), ("b", "test", 7)] and lengths == [4, 7]
    assert rows[1]["events"] == events.encode(songs[1][1]).tolist()
    assert events.summary(lengths, splits) == {"mean_events": 5.5, "splits": {"train": 1, "test": 1}}
    assert events.summary([], {}) == {"mean_events": 0.0, "splits": {}}
