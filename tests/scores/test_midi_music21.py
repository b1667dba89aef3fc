"""The symusic MIDI path gives the muspy path's rows on files music21 writes from its corpus (lyrics
and tempo changes between the notes of a track)."""

from __future__ import annotations

from pathlib import Path

import music21
import pytest

from assets.scores.datasets import ScoreItem
from assets.scores.ingest import Parsed, music_to_rows, parse_item
from assets.scores.readers import read_item

# Small corpus pieces of every kind music21 reads: chorales (MusicXML, Humdrum), quartets, ABC tunes.
SOURCES = [
    ("bach/bwv66.6.mxl", None),
    ("bach/bwv269.mxl", None),
    ("bach/bwv1.6.mxl", None),
    ("bach/bwv10.7.mxl", None),
    ("bach/bwv11.6.mxl", None),
    ("bach/bwv26.6.mxl", None),
    ("bach/bwv281.krn", None),
    ("bach/bwv30.6.mxl", None),
    ("essenFolksong/altdeu10.abc", 3),
]


def _write(score, path: Path, tempo_at: int | None) -> Path:
    """As music21 writes MIDI, with a tempo change inserted half way through the first part."""
    if tempo_at is not None:
        measures = score.parts[0].getElementsByClass("Measure")
        measures[len(measures) // 2].insert(0, music21.tempo.MetronomeMark(number=tempo_at))
    score.write("midi", fp=str(path))
    return path


def _corpus_score(name: str, number: int | None):
    parsed = music21.corpus.parse(name)
    return parsed.scores[number] if isinstance(parsed, music21.stream.Opus) else parsed


def assert_same_rows(path: Path) -> Parsed:
    item = ScoreItem("test", path.stem, str(path), "midi", None)
    expected = music_to_rows(read_item(item), item, "sha")
    result = parse_item(item)
    assert isinstance(result, Parsed)
    assert result.notes.to_pylist() == expected.notes.to_pylist()
    assert result.song | {"sha256": "sha", "reader": "muspy"} == expected.song
    return result


@pytest.mark.parametrize(("name", "number"), SOURCES)
def test_music21_corpus_files_give_muspys_rows(tmp_path, name, number):
    path = _write(_corpus_score(name, number), tmp_path / "piece.mid", tempo_at=72)
    result = assert_same_rows(path)
    assert result.song["reader"] == "symusic"
    assert result.song["n_notes"] > 20
    assert any(tempo["time"] > 0 for tempo in result.song["tempos"])  # the change half way through
