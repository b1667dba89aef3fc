import os
from pathlib import Path

import music21
import muspy
import pytest

from assets.scores import datasets
from assets.scores.datasets import ScoreItem
from assets.scores.music21_convert import from_music21
from assets.scores.readers import RejectError, read_item

from .conftest import ABC_TWO_TUNES, KERN, write_midi


def _item(path: Path, fmt: str, number=None) -> ScoreItem:
    return ScoreItem("test", path.name, str(path), fmt, number)


def _notes(music: muspy.Music) -> list[tuple[int, int, int]]:
    return sorted((n.time, n.pitch, n.duration) for t in music.tracks for n in t.notes)


def _reject(item: ScoreItem, **kwargs) -> RejectError:
    with pytest.raises(RejectError) as error:
        read_item(item, **kwargs)
    return error.value


# --- successful reads ------------------------------------------------------------------------


def test_midi_is_read_at_the_requested_resolution(tmp_path):
    path = write_midi(tmp_path / "a.mid", notes=((0, 60, 48), (48, 62, 24)), resolution=48)
    music = read_item(_item(path, "midi"), resolution=12)
    assert music.resolution == 12
    assert _notes(music) == [(0, 60, 12), (12, 62, 6)]
    assert music.metadata.source_filename == "a.mid"


def test_abc_reads_only_the_numbered_tune(tmp_path):
    path = tmp_path / "two.abc"
    path.write_text(ABC_TWO_TUNES)
    first = read_item(_item(path, "abc", 3))
    second = read_item(_item(path, "abc", 7))
    assert [n.pitch for n in first.tracks[0].notes] == [60, 62, 64, 65, 67, 69, 71, 72]
    assert [n.pitch for n in second.tracks[0].notes] == [67, 69, 71, 74]
    assert second.time_signatures[0].numerator == 3
    assert second.metadata.title == "Second"


def test_abc_tune_in_a_corpus_file_with_thousands_of_tunes():
    item = datasets.list_items("essen", "/nonexistent")[500]
    music = read_item(item)
    assert music.metadata.source_filename == Path(item.path).name
    assert _notes(music)


def test_humdrum(tmp_path):
    path = tmp_path / "p.krn"
    path.write_text(KERN)
    music = read_item(_item(path, "humdrum"), resolution=4)
    assert len(music.tracks) == 2
    assert _notes(music)[:2] == [(0, 60, 4), (0, 64, 4)]


@pytest.mark.parametrize("chorale", ["bach/bwv66.6.mxl", "bach/bwv1.6.mxl", "bach/bwv10.7.mxl", "bach/bwv67.4.xml"])
def test_musicxml_reader_matches_the_music21_path_on_chorales(chorale):
    """Why muspy's MusicXML reader is used: on the chorales it gives the notes music21 gives."""
    item = next(i for i in datasets.list_items("bach_chorales", "/nonexistent") if i.item_id == chorale)
    music = read_item(item)
    reference = from_music21(music21.converter.parse(item.path), resolution=24)
    assert len(music.tracks) == len(reference.tracks)
    assert _notes(music) == _notes(reference)


def test_musicxml_falls_back_to_music21_when_muspy_rejects_the_file():
    """Trecento files lack instrument ids that muspy's reader insists on."""
    item = datasets.list_items("trecento", "/nonexistent")[0]
    with pytest.raises(muspy.MusicXMLError):
        muspy.read_musicxml(item.path)
    reference = _notes(from_music21(music21.converter.parse(item.path, forceSource=True), resolution=24))
    assert reference and _notes(read_item(item)) == reference


# --- failures --------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    error = _reject(_item(tmp_path / "gone.mid", "midi"))
    assert (error.stage, error.error_type) == ("file", "FileNotFoundError")
    assert "no such file" in str(error)


def test_directory_is_not_a_file(tmp_path):
    (tmp_path / "dir.mid").mkdir()
    assert _reject(_item(tmp_path / "dir.mid", "midi")).error_type == "NotARegularFile"


def test_readability_is_what_this_process_may_read(tmp_path):
    """Mode 200 stops every process but root's, which reads the file; no read bit decides alone."""
    path = write_midi(tmp_path / "locked.mid")
    path.chmod(0o200)
    if os.access(path, os.R_OK):
        assert _notes(read_item(_item(path, "midi"))) == [(0, 60, 24), (24, 64, 24), (48, 67, 48)]
        return
    error = _reject(_item(path, "midi"))
    assert (error.stage, error.error_type) == ("file", "PermissionError")
    assert "no read permission" in str(error)


def test_empty_file(tmp_path):
    (tmp_path / "e.mid").write_bytes(b"")
    assert _reject(_item(tmp_path / "e.mid", "midi")).error_type == "EmptyFile"


def test_too_large_file_is_rejected_from_stat_alone(tmp_path):
    path = tmp_path / "huge.mid"
    path.write_bytes(b"MThd")
    os.truncate(path, 200_000_000)  # sparse: no 200 MB written
    error = _reject(_item(path, "midi"))
    assert (error.stage, error.error_type) == ("file", "FileTooLarge")
    assert "200000000 bytes > 50000000" in str(error)
    assert read_item(_item(write_midi(tmp_path / "ok.mid"), "midi"), max_bytes=1000).tracks


def test_truncated_midi(tmp_path):
    data = write_midi(tmp_path / "full.mid").read_bytes()
    (tmp_path / "cut.mid").write_bytes(data[: len(data) // 2])
    error = _reject(_item(tmp_path / "cut.mid", "midi"))
    assert error.stage == "parse" and "cut.mid" in str(error)


def test_corrupt_midi_bytes(tmp_path):
    track = b"\x00\x90\x3c\xff\x00\xff\x2f\x00"  # note-on with velocity 255: not a data byte
    data = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x18MTrk" + len(track).to_bytes(4, "big") + track
    (tmp_path / "bad.mid").write_bytes(data)
    assert _reject(_item(tmp_path / "bad.mid", "midi")).stage == "parse"


def _midi_claiming(tracks: int, chunks: int) -> bytes:
    """A format-1 MIDI header claiming `tracks` tracks followed by `chunks` one-note MTrk chunks."""
    track = b"\x00\x90\x3c\x40\x18\x80\x3c\x00\x00\xff\x2f\x00"
    header = b"MThd\x00\x00\x00\x06\x00\x01" + tracks.to_bytes(2, "big") + b"\x00\x18"
    return header + (b"MTrk" + len(track).to_bytes(4, "big") + track) * chunks


@pytest.mark.parametrize("chunks", [0, 1])
def test_midi_header_claiming_more_tracks_than_present(tmp_path, chunks):
    (tmp_path / "liar.mid").write_bytes(_midi_claiming(40000, chunks))
    error = _reject(_item(tmp_path / "liar.mid", "midi"))
    assert (error.stage, error.error_type) == ("parse", "TrackCountMismatch")
    assert f"MIDI header claims 40000 tracks but the file holds {chunks}" in str(error)


def test_midi_header_with_honest_track_count_is_read(tmp_path):
    (tmp_path / "two.mid").write_bytes(_midi_claiming(2, 2))
    assert _notes(read_item(_item(tmp_path / "two.mid", "midi"))) == [(0, 60, 24), (0, 60, 24)]


def test_random_text_with_midi_suffix(tmp_path):
    (tmp_path / "text.mid").write_text("this is a shopping list, not a MIDI file\n" * 10)
    error = _reject(_item(tmp_path / "text.mid", "midi"))
    assert error.stage == "parse" and "MThd" in str(error)


def test_malformed_musicxml(tmp_path):
    path = tmp_path / "broken.musicxml"
    path.write_text('<?xml version="1.0"?><score-partwise><part-list><score-part id="P1">')
    error = _reject(_item(path, "musicxml"))
    assert (error.stage, error.error_type) == ("parse", "ParseError")
    assert str(error) == (
        "cannot parse broken.musicxml: muspy: ParseError: no element found: line 1, column 68; "
        "music21: ParseError: no element found: line 1, column 68"
    )


TIMEWISE = (
    '<?xml version="1.0"?><score-timewise version="3.1">'
    '<part-list><score-part id="P1"><part-name>A</part-name></score-part></part-list>'
    '<measure number="1"><part id="P1"><note><pitch><step>C</step><octave>4</octave></pitch>'
    "<duration>1</duration></note></part></measure></score-timewise>"
)


def test_musicxml_that_both_readers_fail_on_keeps_both_errors(tmp_path):
    """Neither muspy nor music21 reads timewise MusicXML, and each says so in its own words."""
    path = tmp_path / "timewise.musicxml"
    path.write_text(TIMEWISE)
    error = _reject(_item(path, "musicxml"))
    assert (error.stage, error.error_type) == ("parse", "MusicXMLImportException")
    muspy_part, music21_part = str(error).removeprefix("cannot parse timewise.musicxml: ").split("; ")
    assert muspy_part == "muspy: ValueError: MusicXML file with timewise type is not supported."
    assert music21_part.startswith("music21: MusicXMLImportException: Cannot parse MusicXML files not in score-partwise")


def test_abc_tune_number_not_in_file(tmp_path):
    path = tmp_path / "two.abc"
    path.write_text(ABC_TWO_TUNES)
    error = _reject(_item(path, "abc", 99))
    assert error.stage == "parse" and "X:99" in str(error)


def test_score_without_notes(tmp_path):
    muspy.Music(resolution=24, tracks=[muspy.Track()]).write_midi(str(tmp_path / "silent.mid"))
    error = _reject(_item(tmp_path / "silent.mid", "midi"))
    assert (error.stage, error.error_type) == ("content", "EmptyScore")


def test_unknown_format(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    error = _reject(_item(tmp_path / "notes.txt", "unknown"))
    assert error.stage == "format" and "unsupported file type .txt" in str(error)
