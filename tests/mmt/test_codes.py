import numpy as np

from assets.core.rejects import Reject
from assets.mmt import codes
from storage import shards


def row(song: str, n_events: int) -> dict:
    return {"dataset": "toy", "song": song, "split": "train", "n_events": n_events, "n_notes": 0,
            "codes": np.zeros((n_events, 6), np.int16).tolist()}  # fmt: skip


def test_write_encoded_streams_rows_and_returns_rejects_and_lengths(tmp_path):
    rows = [row("a", 3), Reject("toy", "drums", "mmt_encode", "EncodingError", "drums only"), row("b", 5)]
    with shards.ShardWriter(str(tmp_path), codes.ASSET, "toy", codes.CODES, rows_per_shard=1) as writer:
        rejects, lengths = codes.write_encoded(rows, writer)
    assert [r.item for r in rejects] == ["drums"] and lengths == [3, 5]
    table = shards.read_table(str(tmp_path), codes.ASSET, "toy")
    assert table.column("song").to_pylist() == ["a", "b"]
    assert [len(c) for c in codes.to_codes(table.column("codes").combine_chunks())] == [3, 5]


def test_length_stats_count_the_songs_cut_at_the_limit():
    assert codes.length_stats([10, 1024, 500, 1024], 1024) == {"mean_events": 639.5, "truncated_songs": 2}
    assert codes.length_stats([], 1024) == {"mean_events": 0.0, "truncated_songs": 0}
