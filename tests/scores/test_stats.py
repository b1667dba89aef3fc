import pandas as pd

from assets.scores import stats


def songs_frame():
    return pd.DataFrame(
        {
            "length_seconds": [30.0, 60.0, 90.0],
            "initial_tempo": [60.0, 100.0, 100.0],
            "n_notes": [10, 20, 30],
            "key_signatures": [
                [{"time": 0, "root": 2, "mode": "major", "fifths": 2}],
                [{"time": 8, "root": None, "mode": "minor", "fifths": 1}, {"time": 0, "root": 9, "mode": "minor", "fifths": 0}],
                [],
            ],
        }
    )


def test_initial_keys_take_the_earliest_and_infer_roots():
    assert stats.initial_keys(songs_frame()) == ["D major", "A minor", "unknown"]
    assert stats.key_name(None, "minor", 1) == "E minor"


def test_histograms_are_pngs():
    figures = stats.histograms(songs_frame(), "toy")
    assert set(figures) == {"song_length.png", "initial_tempo.png", "key.png"}
    assert all(png.startswith(b"\x89PNG") for png in figures.values())


def test_summary():
    summary = stats.summary(songs_frame())
    assert summary["songs"] == 3 and summary["notes"] == 60
    assert summary["hours"] == 180 / 3600
