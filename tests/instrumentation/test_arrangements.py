import muspy
import numpy as np
import pytest

from assets.core.tools import soundfont_path
from assets.instrumentation import arrangements
from models import part_separation as ps
from models.part_separation import PartSong


def chorale(name: str) -> PartSong:
    onset = np.repeat(np.arange(16) * 24, 4)
    label = np.tile(np.arange(4), 16)
    pitch = 76 - 7 * label
    return PartSong("toy", name, "test", "satb", tuple("SATB"), onset, np.full(64, 24), pitch, label)


@pytest.fixture(scope="module")
def model():
    cfg = ps.configure(ps.PROFILES["smoke"], [chorale("a")])
    return ps.build_model(cfg).eval(), cfg


def test_example_inputs_are_the_first_test_songs_as_multitrack_music():
    inputs = arrangements.example_inputs([chorale("bach/a.mxl"), chorale("b"), chorale("c")], 2)
    assert [name for name, _ in inputs] == ["bach/a.mxl", "b"]
    assert [len(t.notes) for t in inputs[0][1].tracks] == [16, 16, 16, 16]


def test_each_input_gives_a_row_and_an_unarrangeable_one_says_why(model, tmp_path):
    inputs = [*arrangements.example_inputs([chorale("bach/a.mxl")], 1), ("empty", muspy.Music(resolution=24))]
    frame, rolls = arrangements.write_arrangements(inputs, *model, "SATB", "satb", tmp_path / "out", soundfont_path())
    assert list(frame.columns) == arrangements.COLUMNS and list(frame["input"]) == ["bach/a.mxl", "empty"]
    arranged = frame.iloc[0]
    assert arranged["notes"] == 64 and arranged["midi"].endswith("bach_a.mxl.mid")
    assert sum(len(t.notes) for t in muspy.read_midi(arranged["midi"]).tracks) == 64
    assert (arranged["audio"] != "") == (soundfont_path() is not None)
    assert frame.iloc[1]["error"] == "the input has no notes" and frame.iloc[1]["midi"] == ""
    assert [name for name, _ in rolls] == ["bach/a.mxl"] and rolls[0][1].startswith(b"\x89PNG")


def test_score_files_are_read_by_stem(tmp_path):
    path = tmp_path / "solo.mid"
    muspy.write_midi(path, arrangements.example_inputs([chorale("a")], 1)[0][1])
    (name, music), = arrangements.read_inputs([str(path)])
    assert name == "solo" and sum(len(t.notes) for t in music.tracks) == 64
