"""The symusic MIDI path gives the very rows the muspy path gives, or hands the file to muspy.

Files are written byte by byte here, so that running status, velocity-0 note-offs, control changes
before program changes and every other layout a real file may have are under the test's control.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from assets.core.rejects import Reject
from assets.scores.datasets import ScoreItem
from assets.scores.ingest import (
    Limits,
    Parsed,
    arrays_to_rows,
    music_to_rows,
    parse_item,
)
from assets.scores.midi_arrays import NotMuspyEquivalent, ScoreArrays, read_midi_arrays
from assets.scores.readers import read_item, read_score

RESOLUTIONS = (24, 480, 96, 100, 7, 25, 960)


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    while value := value >> 7:
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


def _meta(kind: int, body: bytes) -> bytes:
    return bytes([0xFF, kind]) + _varlen(len(body)) + body


def _on(channel: int, pitch: int, velocity: int) -> bytes:
    return bytes([0x90 | channel, pitch, velocity])


def _off(channel: int, pitch: int, zero_velocity_on: bool = False) -> bytes:
    return bytes([0x90 | channel, pitch, 0]) if zero_velocity_on else bytes([0x80 | channel, pitch, 64])


def _cc(channel: int, number: int, value: int) -> bytes:
    return bytes([0xB0 | channel, number, value])


def _program(channel: int, program: int) -> bytes:
    return bytes([0xC0 | channel, program])


def _tempo(qpm: float) -> bytes:
    return _meta(0x51, round(60_000_000 / qpm).to_bytes(3, "big"))


def write_raw(
    path: Path, tracks: list[list[tuple[int, bytes]]], tpq: int, fmt: int = 1, running: bool = False
) -> Path:
    """A MIDI file from (tick, event bytes) lists, in the order given; with `running`, a channel
    event repeating the previous status leaves it out."""
    out = struct.pack(">4sIHHH", b"MThd", 6, fmt, len(tracks), tpq)
    for events in tracks:
        body, now, status = bytearray(), 0, None
        for tick, event in events:
            body += _varlen(tick - now)
            now = tick
            body += event[1:] if running and event[0] == status else event
            status = event[0] if event[0] < 0xF0 else None
        body += b"\x00\xff\x2f\x00"
        out += b"MTrk" + struct.pack(">I", len(body)) + body
    path.write_bytes(out)
    return path


def _item(path: Path) -> ScoreItem:
    return ScoreItem("test", path.stem, str(path), "midi", None)


def _both(path: Path, resolution: int = 24) -> tuple[Parsed, Parsed]:
    item = _item(path)
    muspy_rows = music_to_rows(read_item(item, resolution=resolution), item, "sha")
    symusic_rows = arrays_to_rows(read_midi_arrays(str(path), resolution), item, "sha")
    return muspy_rows, symusic_rows


def assert_same_rows(path: Path, resolution: int = 24) -> Parsed:
    muspy_rows, symusic_rows = _both(path, resolution)
    assert symusic_rows.notes.schema == muspy_rows.notes.schema
    assert symusic_rows.notes.to_pylist() == muspy_rows.notes.to_pylist()
    assert (symusic_rows.song["reader"], muspy_rows.song["reader"]) == ("symusic", "muspy")
    assert symusic_rows.song | {"reader": "muspy"} == muspy_rows.song
    return symusic_rows


def _by_tick(events: list[tuple[int, int, bytes]]) -> list[tuple[int, bytes]]:
    """(tick, rank, event) in file order: by tick, then rank (offs before controls before ons)."""
    return [(tick, event) for tick, _, event in sorted(events, key=lambda e: (e[0], e[1]))]


def _conductor(tpq: int) -> list[tuple[int, bytes]]:
    return [
        (0, _meta(0x03, b"Song \xe9 title")),
        (0, _tempo(100)),
        (0, _meta(0x58, bytes([3, 2, 24, 8]))),
        (0, _meta(0x59, bytes([0xFD, 1]))),  # three flats, minor: C minor
        (tpq * 3, _tempo(140)),
        (tpq * 3, _tempo(90)),  # two tempos at one tick: the later one holds
        (tpq * 5 + tpq // 3, _meta(0x58, bytes([6, 3, 24, 8]))),
        (tpq * 6, _meta(0x59, bytes([2, 0]))),
    ]


def _hand_made(tpq: int) -> list[list[tuple[int, bytes]]]:
    """Every layout the two readers must agree on, at `tpq` ticks per quarter."""
    piano = [
        (0, _meta(0x03, b"Piano")),
        (0, _cc(0, 7, 100)),  # before the program change: muspy makes an empty track of program 0
        (0, _program(0, 1)),
        (0, _on(0, 60, 80)),  # at tick 0
        (0, _on(0, 64, 70)),
        (tpq, _off(0, 60)),
        (tpq, _on(0, 60, 90)),  # the same pitch again at the tick its last note ends
        (tpq + 1, _on(0, 60, 91)),  # overlapping one of the same pitch
        (tpq + 5, _off(0, 60, zero_velocity_on=True)),  # closes the first of the two (first in, first out)
        (tpq * 2, _off(0, 60)),
        (tpq * 2, _off(0, 64, zero_velocity_on=True)),
        (tpq * 2, _on(0, 67, 50)),
        (tpq * 2, _off(0, 67)),  # zero length
        (tpq * 2, _off(0, 67)),  # a note-off with nothing sounding
        (tpq * 3 - 1, _on(0, 72, 127)),
        (tpq * 4 + 13, _off(0, 72)),
        (tpq * 4 + 13, _program(0, 2)),  # a program change once nothing sounds
        (tpq * 4 + 13, _on(0, 72, 40)),
        (tpq * 5, _off(0, 72)),
        (tpq * 5, _cc(0, 64, 127)),
    ]
    second = [
        (0, _meta(0x03, b"Two channels")),
        (0, _program(3, 40)),
        (0, _program(2, 40)),  # the same program on two channels: two tracks
        (0, _on(3, 55, 60)),
        (0, _on(2, 57, 61)),
        (tpq // 3, _off(2, 57)),
        (tpq // 2, _off(3, 55)),
        (tpq, _cc(5, 10, 64)),  # a channel with controls only: an empty track
    ]
    drums = [
        (0, _meta(0x03, b"Drums")),
        (0, _on(9, 36, 100)),
        (0, _on(9, 42, 90)),
        (1, _off(9, 36)),
        (1, _off(9, 42)),
        (tpq * 7, _on(9, 38, 100)),
        (tpq * 7 + tpq // 7, _off(9, 38, zero_velocity_on=True)),
    ]
    return [_conductor(tpq), piano, second, drums]


@pytest.mark.parametrize("tpq", [480, 96, 100, 25, 24])
@pytest.mark.parametrize("running", [False, True])
def test_hand_made_files_give_muspys_rows(tmp_path, tpq, running):
    path = write_raw(tmp_path / "hand.mid", _hand_made(tpq), tpq, running=running)
    for resolution in RESOLUTIONS:
        rows = assert_same_rows(path, resolution)
    assert rows.song["title"] == "Song \xe9 title"
    assert {r["part_name"] for r in rows.notes.to_pylist()} == {"Piano", "Two channels", "Drums"}
    assert rows.notes.column("is_drum").to_pylist().count(True) == 3


def test_type_0_file_gives_muspys_rows(tmp_path):
    tpq = 96
    events = [(tick, event) for tick, event in _conductor(tpq)]
    events += [(0, _program(1, 5)), (0, _on(1, 60, 80)), (0, _on(0, 62, 80)), (tpq, _off(1, 60)), (tpq, _off(0, 62))]
    events += [(tpq * 2, _on(9, 35, 80)), (tpq * 2 + 3, _off(9, 35))]
    path = write_raw(tmp_path / "zero.mid", [sorted(events, key=lambda e: e[0])], tpq, fmt=0, running=True)
    assert assert_same_rows(path).song["title"] == "Song \xe9 title"


def _random_track(rng: random.Random, tpq: int, index: int) -> list[tuple[int, bytes]]:
    """Notes on one or two channels with every feature at random: drums, controls before and
    after program changes, overlapping and zero-length notes, both kinds of note-off."""
    channels = rng.sample([c for c in range(16) if c != 9], rng.randint(1, 2))
    if rng.random() < 0.25:
        channels.append(9)
    length = tpq * rng.randint(4, 40)
    events: list[tuple[int, int, bytes]] = []
    if rng.random() < 0.7:
        events.append((0, 0, _meta(0x03, f"part {index}".encode())))
    for channel in channels:
        if rng.random() < 0.5:
            events.append((0, 1, _cc(channel, 121, 0)))
        if channel != 9 and rng.random() < 0.8:
            events.append((0, 2, _program(channel, rng.randrange(128))))
        split = length // 2
        for _ in range(rng.randint(1, 60)):
            pitch = rng.choice([60, 62, rng.randrange(128)])  # repeated pitches make overlaps
            start = rng.randrange(split) // rng.choice([1, tpq // 4 or 1]) * rng.choice([1, tpq // 4 or 1])
            start = min(start, split - 1)
            end = min(start + rng.choice([0, 0, 1, rng.randrange(tpq * 2)]), split)
            events.append((start, 4, _on(channel, pitch, rng.randrange(1, 128))))
            events.append((end, 0 if end > start else 5, _off(channel, pitch, rng.random() < 0.5)))
        if channel != 9 and rng.random() < 0.5:  # a second program once the first half has ended
            events.append((split, 1, _program(channel, rng.randrange(128))))
            events.append((split, 4, _on(channel, 50, 64)))
            events.append((split + rng.randrange(tpq), 5, _off(channel, 50)))
        if rng.random() < 0.5:
            events.append((rng.randrange(length), 3, _cc(channel, 64, rng.choice([0, 127]))))
        if rng.random() < 0.3:  # a note left sounding at the end of the track, after any program change
            events.append((length - rng.randrange(tpq), 6, _on(channel, rng.randrange(128), rng.randrange(1, 128))))
        if rng.random() < 0.5:  # a meta event among sounding notes
            events.append((rng.randrange(length), 3, _meta(0x06, b"marker")))
    if rng.random() < 0.1:  # a delta time of four bytes
        events.append((1 << 21, 3, _cc(channels[0], 7, 1)))
    return _by_tick(events)


def test_random_files_give_muspys_rows(tmp_path):
    rng = random.Random(12)
    fast = 0
    for number in range(60):
        tpq = rng.choice([480, 96, 384, 100, 25, 7, 960, 24])
        tracks = [_conductor(tpq)] + [_random_track(rng, tpq, i) for i in range(rng.randint(1, 5))]
        path = write_raw(tmp_path / f"r{number}.mid", tracks, tpq, running=rng.random() < 0.5)
        item = _item(path)
        muspy_rows = music_to_rows(read_item(item), item, "sha")
        result = parse_item(item)
        assert isinstance(result, Parsed)
        assert result.notes.to_pylist() == muspy_rows.notes.to_pylist()
        assert result.song | {"sha256": "sha", "reader": "muspy"} == muspy_rows.song
        fast += isinstance(read_score(item), ScoreArrays)
    assert fast == 60


def test_running_status_after_a_meta_event_is_read_by_muspy(tmp_path):
    track = b"\x00\x90\x3c\x40" + b"\x00" + _meta(0x06, b"m") + b"\x05\x3c\x00"  # mido keeps the status
    path = tmp_path / "after_meta.mid"
    path.write_bytes(struct.pack(">4sIHHH", b"MThd", 6, 1, 1, 96) + b"MTrk" + struct.pack(">I", len(track)) + track)
    with pytest.raises(NotMuspyEquivalent, match="running status"):
        read_midi_arrays(str(path), 24)
    result = parse_item(_item(path))
    assert isinstance(result, Parsed) and result.notes.column("duration").to_pylist() == [1]


def test_a_delta_time_of_five_bytes_is_read_by_muspy(tmp_path):
    # beyond the four bytes the MIDI file spec allows: mido reads it, symusic refuses it
    track = b"\x00\x90\x3c\x40" + b"\x81\x00\x3c\x00" + b"\x80\x80\x80\x80\x01\x3e\x40" + b"\x10\x3e\x00"
    track += b"\x00\xff\x2f\x00"
    path = tmp_path / "long_delta.mid"
    path.write_bytes(struct.pack(">4sIHHH", b"MThd", 6, 1, 1, 96) + b"MTrk" + struct.pack(">I", len(track)) + track)
    assert not isinstance(read_score(_item(path)), ScoreArrays)
    result = parse_item(_item(path))
    assert isinstance(result, Parsed) and result.notes.column("pitch").to_pylist() == [60, 62]


def test_notes_left_sounding_are_closed_as_muspy_closes_them(tmp_path):
    tpq = 96
    melody = [
        (0, _meta(0x03, b"Open")),
        (0, _on(0, 60, 80)),
        (0, _on(2, 50, 80)),
        (5, _off(2, 50)),
        (10, _on(0, 60, 81)),  # two of one pitch: the note-off closes the first, the second stays open
        (10, _on(0, 62, 82)),
        (20, _off(0, 62)),
        (30, _off(0, 60)),
        (40, _on(3, 64, 83)),  # a channel whose only note stays open: its track is made at the end
        (50, _program(2, 7)),  # once channel 2's note closed: an empty track of program 7 at the end
    ]
    other = [(0, _program(1, 20)), (0, _on(1, 67, 84)), (5, _on(1, 69, 85)), (9, _off(1, 69))]
    path = write_raw(tmp_path / "open.mid", [_conductor(tpq), melody, other], tpq)
    data = bytearray(path.read_bytes())
    last = data.rindex(b"MTrk") + 4
    data[last : last + 4] = struct.pack(">I", struct.unpack_from(">I", data, last)[0] + 1)
    path.write_bytes(data[:-4] + b"\x83\x00\xff\x2f\x00")  # the last chunk ends 384 ticks after its last event
    for resolution in RESOLUTIONS:
        rows = assert_same_rows(path, resolution)
    assert isinstance(read_score(_item(path)), ScoreArrays)
    open_notes = [(r["pitch"], r["track"], r["duration"]) for r in rows.notes.to_pylist() if r["velocity"] in (81, 83, 84)]
    assert sorted(open_notes) == [(60, 1, 400), (64, 3, 100), (67, 4, 3930)]  # at 960 ticks per quarter


def test_a_program_change_under_a_sounding_note_is_read_by_muspy(tmp_path):
    tracks = [[(0, _on(0, 60, 80)), (10, _program(0, 30)), (20, _off(0, 60))]]
    path = write_raw(tmp_path / "change.mid", tracks, 96)
    with pytest.raises(NotMuspyEquivalent, match="program change"):
        read_midi_arrays(str(path), 24)
    result = parse_item(_item(path))
    assert isinstance(result, Parsed) and result.notes.column("program").to_pylist() == [30]
    assert result.song["reader"] == "muspy"


def test_a_file_both_readers_refuse_keeps_both_errors(tmp_path):
    path = tmp_path / "bad.mid"
    # a valid header, then a track whose first event is a data byte with no status before it
    path.write_bytes(struct.pack(">4sIHHH", b"MThd", 6, 1, 1, 96) + b"MTrk" + struct.pack(">I", 4) + b"\x00\x3c\x40\x00")
    result = parse_item(_item(path))
    assert isinstance(result, Reject)
    assert "symusic: " in result.message and "muspy: " in result.message
    assert result.stage == "parse"


def test_guards_hold_on_the_symusic_path(tmp_path):
    tracks = [[(0, _on(0, 60 + i, 80)) for i in range(5)] + [(10, _off(0, 60 + i)) for i in range(5)]]
    path = write_raw(tmp_path / "five.mid", tracks, 96)
    assert isinstance(read_score(_item(path)), ScoreArrays)
    too_many = parse_item(_item(path), Limits(max_notes=4))
    assert isinstance(too_many, Reject) and too_many.error_type == "TooManyNotes"
    too_large = parse_item(_item(path), Limits(max_bytes=10))
    assert isinstance(too_large, Reject) and too_large.error_type == "FileTooLarge"
    data = path.read_bytes()
    path.write_bytes(data[:10] + struct.pack(">H", 3) + data[12:])  # the header claims three tracks
    cut = parse_item(_item(path))
    assert isinstance(cut, Reject) and cut.error_type == "TrackCountMismatch"


def test_an_empty_file_is_an_empty_score(tmp_path):
    path = write_raw(tmp_path / "silent.mid", [[(0, _tempo(120)), (5, _cc(0, 7, 100))]], 96)
    result = parse_item(_item(path))
    assert isinstance(result, Reject) and result.error_type == "EmptyScore"


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
