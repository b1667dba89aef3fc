import muspy
import numpy as np
import pytest

from assets.core.tools import soundfont_path
from assets.instrumentation import arrangements, baselines, evaluation
from assets.instrumentation.arrange import arrange, model_arranger, zone_arranger
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
    arranger = model_arranger(*model, "SATB", "satb", "part_separation v1")
    frame, rolls = arrangements.write_arrangements(inputs, arranger, tmp_path / "out", soundfont_path())
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


def test_the_zone_baseline_arranges_from_its_logged_record():
    """The record part_separation_eval logs is JSON; the arranger rebuilt from it labels like the fitted zones."""
    import json

    train = [chorale("a")]
    record = json.loads(json.dumps(evaluation.zone_baseline(train, tuple("SATB"), "satb")))
    zones = baselines.fit_zones(train, 4)
    # parts at 76, 69, 62, 55; a pitch between two parts ties and goes to the upper part (the lower label)
    assert record["zones"] == {"S": [70, 127], "A": [63, 69], "T": [56, 62], "B": [0, 55]}
    np.testing.assert_array_equal(baselines.zones_of_ranges(record["zones"], record["part_names"]), zones)
    arranged = arrange(arrangements.example_inputs(train, 1)[0][1], zone_arranger(record))
    assert [t.name for t in arranged.tracks] == list("SATB")
    assert [sorted({n.pitch for n in t.notes}) for t in arranged.tracks] == [[76], [69], [62], [55]]
