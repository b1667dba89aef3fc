"""The symusic MIDI path gives the muspy path's rows on files music21 writes from its corpus, and on
the layouts those files have: meta events (lyrics, tempo changes) between the notes of a track."""

from __future__ import annotations

import struct
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


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    while value := value >> 7:
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


def _meta(kind: int, body: bytes) -> bytes:
    return bytes([0xFF, kind]) + _varlen(len(body)) + body


@pytest.mark.parametrize("fmt", [0, 1])
def test_meta_events_between_notes_keep_their_times(tmp_path, fmt):
    """Each note pair is its own run of channel events, cut by a lyric, a tempo change, a time
    signature or a key signature; every meta event's tick counts the notes before it."""
    body = bytearray(b"\x00" + _meta(0x03, b"Voice") + b"\x00\xc0\x05")
    tick, tempo_ticks = 0, []
    for i in range(24):
        tick += 37 + i + (i if i % 5 == 2 else 0)
        tempo_ticks += [tick] if i % 5 == 2 else []
        tick += 300 if i % 11 == 4 else 0
        body += b"\x00" + _meta(0x05, f"la{i}".encode())
        body += b"\x00" + bytes([0x90, 60 + i % 12, 80]) + _varlen(37 + i) + bytes([0x80, 60 + i % 12, 0])
        if i % 5 == 2:
            body += _varlen(i) + _meta(0x51, (400_000 + 1000 * i).to_bytes(3, "big"))
        if i % 7 == 3:
            body += b"\x00" + _meta(0x58, bytes([3 + i % 2, 2, 24, 8]))
        if i % 11 == 4:
            body += _varlen(300) + _meta(0x59, bytes([i % 5, i % 2]))
    body += b"\x00\xff\x2f\x00"
    chunks = [bytes(body)] if fmt == 0 else [b"\x00" + _meta(0x03, b"Title") + b"\x00\xff\x2f\x00", bytes(body)]
    data = struct.pack(">4sIHHH", b"MThd", 6, fmt, len(chunks), 96)
    data += b"".join(b"MTrk" + struct.pack(">I", len(c)) + c for c in chunks)
    path = tmp_path / "lyrics.mid"
    path.write_bytes(data)
    result = assert_same_rows(path)
    assert result.song["reader"] == "symusic"
    assert len(result.song["tempos"]) == 5 and len(result.song["key_signatures"]) == 2
    assert [t["time"] for t in result.song["tempos"]] == [round(t * 24 / 96) for t in tempo_ticks]
