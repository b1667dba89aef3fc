import os

import music21
import pytest
from music21 import bar, chord, instrument, key, metadata, meter, note, stream, tempo

from assets.scores import datasets
from assets.scores.datasets.formats import abc_tune_text
from assets.scores.datasets.music21_corpus import COLLECTIONS
from assets.scores.music21_convert import from_music21


def _smallest_items(name: str, count: int = 3):
    """The few smallest items of a collection keep the suite fast while touching every collection."""
    items = datasets.list_items(name, "/nonexistent")
    return sorted(items, key=lambda item: (os.path.getsize(item.path), item.item_id))[:count]


def _parse(item) -> stream.Stream:
    if item.format == "abc":
        return music21.converter.parseData(abc_tune_text(item.path, item.number), format="abc")
    return music21.converter.parse(item.path)


CORPUS_ITEMS = [item for name in sorted(COLLECTIONS) for item in _smallest_items(name)]


def _first_measure_onsets(score: stream.Stream, resolution: int) -> tuple[list[int], int]:
    """Onset ticks of the first part's first measure, read straight from music21, and its end tick.

    The first measure sounds first whatever the repeats do, so this checks the tick grid
    without expanding repeats a second time.
    """
    part = score.parts[0] if isinstance(score, stream.Score) and score.parts else score
    measure = part.getElementsByClass(stream.Measure).first()
    onsets = {
        round((measure.offset + n.offset) * resolution)
        for n in measure.flatten().notes
        if not n.duration.isGrace and not (n.tie is not None and n.tie.type in ("stop", "continue"))
    }
    return sorted(onsets), round((measure.offset + measure.highestTime) * resolution)


@pytest.mark.parametrize("item", CORPUS_ITEMS, ids=[f"{i.dataset}:{i.item_id}" for i in CORPUS_ITEMS])
def test_every_collection_converts(item):
    score = _parse(item)
    music = from_music21(score, resolution=12)
    assert music.resolution == 12
    onsets, measure_end = _first_measure_onsets(score, 12)
    assert sorted({n.time for n in music.tracks[0].notes if n.time < measure_end}) == onsets
    assert music.tempos and music.tempos[0].time == 0
    notes = [n for track in music.tracks for n in track.notes]
    assert notes
    for track in music.tracks:
        times = [n.time for n in track.notes]
        assert times == sorted(times)
    assert all(0 <= n.pitch <= 127 and n.duration > 0 and n.time >= 0 for n in notes)
    assert all(isinstance(n.time, int) and isinstance(n.duration, int) for n in notes)


def test_known_chorale_matches_music21_counts():
    score = music21.corpus.parse("bach/bwv66.6")
    music = from_music21(score, resolution=24)
    expected = [len(part.stripTies().flatten().notes) for part in score.parts]
    assert len(music.tracks) == len(score.parts) == 4
    assert [len(track.notes) for track in music.tracks] == expected == [36, 42, 44, 41]
    assert [track.name for track in music.tracks] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert music.key_signatures[0].root == 6 and music.key_signatures[0].mode == "minor"
    assert music.key_signatures[0].fifths == 3
    assert music.tempos[0].qpm == 96
    soprano = score.parts[0].stripTies().flatten().notes
    assert [(n.time, n.pitch) for n in music.tracks[0].notes] == [
        (round(n.offset * 24), n.pitch.midi) for n in soprano
    ]


def _part(*elements, inst=None) -> stream.Part:
    part = stream.Part()
    if inst is not None:
        part.insert(0, inst)
    for element in elements:
        part.append(element)
    return part


def test_ties_merge_chords_expand_and_grace_notes_vanish():
    tied_start, tied_end = note.Note("C4", quarterLength=1), note.Note("C4", quarterLength=2)
    tied_start.tie, tied_end.tie = music21.tie.Tie("start"), music21.tie.Tie("stop")
    grace = note.Note("D5").getGrace()
    loud = chord.Chord(["E4", "G4"], quarterLength=0.5)
    loud.volume.velocity = 100
    music = from_music21(_part(tied_start, tied_end, grace, loud), resolution=4)
    assert [(n.time, n.pitch, n.duration, n.velocity) for n in music.tracks[0].notes] == [
        (0, 60, 12, 64),
        (12, 64, 2, 100),
        (12, 67, 2, 100),
    ]


def test_repeats_are_played_out():
    part = stream.Part()
    for pitch in ("C4", "D4"):
        part.append(stream.Measure([note.Note(pitch)]))
    part.getElementsByClass(stream.Measure)[0].insert(0, meter.TimeSignature("1/4"))
    part.getElementsByClass(stream.Measure)[1].rightBarline = bar.Repeat(direction="end")
    score = stream.Score([part])
    score.insert(0, metadata.Metadata(title="Loop"))
    music = from_music21(score, resolution=1)
    assert [(n.time, n.pitch) for n in music.tracks[0].notes] == [(0, 60), (1, 62), (2, 60), (3, 62)]
    assert music.metadata.title == "Loop"


def test_score_level_information():
    violin = _part(note.Note("A4"), inst=instrument.Violin())
    drums = _part(note.Note("C2"), inst=instrument.BassDrum())
    score = stream.Score([violin, drums])
    score.insert(0, metadata.Metadata(title="Tune", composer="Someone"))
    violin.insert(0, meter.TimeSignature("3/4"))
    violin.insert(0, key.Key("E", "major"))
    violin.insert(0, tempo.MetronomeMark(number=80))
    violin.insert(2, tempo.MetronomeMark(number=140))
    music = from_music21(score, resolution=12)
    assert music.metadata.title == "Tune" and music.metadata.creators == ["Someone"]
    assert [(t.time, t.qpm) for t in music.tempos] == [(0, 80.0), (24, 140.0)]
    assert [(k.root, k.mode, k.fifths) for k in music.key_signatures] == [(4, "major", 4)]
    assert [(t.numerator, t.denominator) for t in music.time_signatures] == [(3, 4)]
    assert music.tracks[0].program == instrument.Violin().midiProgram and not music.tracks[0].is_drum
    assert music.tracks[1].is_drum


def test_default_tempo_and_part_input():
    music = from_music21(_part(note.Note("C4"), note.Note("E4")), resolution=24)
    assert [(t.time, t.qpm) for t in music.tempos] == [(0, 120.0)]
    assert len(music.tracks) == 1 and music.tracks[0].program == 0


def test_opus_with_one_score_converts_and_with_two_is_refused():
    one = stream.Opus([stream.Score([_part(note.Note("C4"))])])
    assert len(from_music21(one).tracks[0].notes) == 1
    two = stream.Opus([stream.Score([_part(note.Note("C4"))]), stream.Score([_part(note.Note("D4"))])])
    with pytest.raises(ValueError, match="exactly one score"):
        from_music21(two)
