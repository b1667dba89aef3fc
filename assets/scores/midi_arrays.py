"""MIDI files to whole note arrays with symusic, laid out exactly as muspy.read_midi lays them out.

symusic pairs note-ons with note-offs in C++ and hands back numpy arrays, far faster than muspy's
mido reader and its per-note objects. Its API does not say which MIDI track or channel a track came
from, in which order muspy would create the tracks (at the first note-off or control change of each
program and channel, keeping the ones left empty), nor the title, and it drops the notes still
sounding at the end of a track, which muspy keeps. One pass over every byte, compiled with numba
(cached on disk, so a process pays the compile once, or never), supplies those: muspy's tracks
with the notes symusic must find on each, the notes muspy closes at the end of a track, and the
meta events. Where the two readers could disagree (a program change under a sounding note, events
after the end of a track, anything mido refuses) it raises NotMuspyEquivalent, and the caller
reads the file with muspy instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numba
import numpy as np
import symusic
from mido import tempo2bpm
from mido.midifiles.meta import _key_signature_decode
from muspy.utils import note_str_to_note_num


class NotMuspyEquivalent(ValueError):
    """symusic's reading of this file may differ from muspy's."""


@dataclass(frozen=True)
class ScoreArrays:
    """A score as muspy holds it after adjust_resolution: song-level events as lists, notes as arrays.

    Notes come track by track (`track` indexes `programs`, `is_drum`, `names`), each track in muspy's
    note order, so that sorting them gives muspy's row order.
    """

    resolution: int
    title: str | None
    tempos: list[tuple[int, float]]  # (time, qpm)
    key_signatures: list[tuple[int, int | None, str | None, int | None]]  # (time, root, mode, fifths)
    time_signatures: list[tuple[int, int, int]]  # (time, numerator, denominator)
    programs: list[int]
    is_drum: list[bool]
    names: list[str | None]
    track: np.ndarray
    onset: np.ndarray
    duration: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    reader: str  # which reader made it, kept in the song row: "symusic" or "muspy"


_MTHD = struct.Struct(">4sIhhh")  # as mido reads it: format, track count and division are signed

# Why the scan stops, by the code it returns: each is a layout where symusic and muspy may disagree.
_REFUSALS = (
    "",
    "chunk where mido expects MTrk",
    "track chunk cut short",
    "a status byte refused by mido",
    "running status without a channel status before it",
    "channel event with a data byte above 127 or cut short",
    "program change while a note sounds on its channel",
    "meta event too short for mido",
    "events after the end of a track, which muspy ignores",
    "SMPTE offset with a frame rate mido does not know",
    "an event runs past the end of its track chunk",
    "a delta time or length longer than 8 bytes",
)
# Meta events mido decodes by indexing their data (shorter ones make it raise), and those kept.
_META_MIN_LENGTH = np.zeros(256, np.int64)
_META_MIN_LENGTH[[0x20, 0x21, 0x51, 0x54, 0x58, 0x59]] = [1, 1, 3, 5, 4, 2]
_KEPT_META = np.zeros(256, np.bool_)
_KEPT_META[[0x03, 0x51, 0x58, 0x59]] = True


@dataclass
class _Layout:
    """What muspy.read_midi builds besides the notes symusic pairs, in muspy's track order."""

    tpq: int
    midi_type: int
    programs: np.ndarray  # per muspy track
    channels: np.ndarray
    chunks: np.ndarray  # the MTrk chunk each track came from
    closed: np.ndarray  # notes closed by a note-off: what symusic reads
    open_notes: np.ndarray  # (track, onset, duration, pitch, velocity) of notes muspy closes at the end of a chunk
    names: list[str | None]  # per muspy track
    title: str | None
    tempos: list[tuple[int, int]]  # (tick, microseconds per quarter)
    key_signatures: list[tuple[int, int, int]]  # (tick, sharps, minor)
    time_signatures: list[tuple[int, int, int]]


def scan(data: bytes) -> _Layout:
    """Walk every event as mido does and record what muspy.read_midi builds besides the closed notes."""
    magic, length, midi_type, n_tracks, division = _MTHD.unpack_from(data)
    if magic != b"MThd" or length < 6:
        raise NotMuspyEquivalent("no MIDI header")
    if midi_type == 2 or division < 1 or n_tracks < 0:
        raise NotMuspyEquivalent(f"MIDI type {midi_type} with division {division} is refused by muspy")
    raw = np.frombuffer(data, np.uint8)
    code, keys, closed, open_notes, metas = _scan_chunks(raw, 8 + length, n_tracks, _META_MIN_LENGTH, _KEPT_META)
    if code:
        raise NotMuspyEquivalent(_REFUSALS[code])
    layout = _Layout(
        tpq=division,
        midi_type=midi_type,
        programs=keys[:, 0],
        channels=keys[:, 1],
        chunks=keys[:, 2],
        closed=closed,
        open_notes=open_notes,
        names=[],
        title=None,
        tempos=[],
        key_signatures=[],
        time_signatures=[],
    )
    names: list[str | None] = [None] * n_tracks
    for chunk, tick, kind, start, size in metas.tolist():
        body = data[start : start + size]
        if kind == 0x03:
            if midi_type == 0 or chunk == 0:
                layout.title = body.decode("latin-1")
            else:
                names[chunk] = body.decode("latin-1")
        elif kind == 0x51:
            layout.tempos.append((tick, body[0] << 16 | body[1] << 8 | body[2]))
        elif kind == 0x58:
            layout.time_signatures.append((tick, body[0], 2 ** body[1]))
        else:
            layout.key_signatures.append((tick, body[0] - 256 if body[0] > 127 else body[0], body[1]))
    layout.names = [names[chunk] for chunk in layout.chunks.tolist()]
    return layout


def load_scan() -> None:
    """Compile the scan, or load it from numba's cache beside this file (a second at least, some
    fifteen to compile): a pool calls it once before forking, so no worker pays it under a file's
    time limit."""
    _scan_chunks(np.frombuffer(b"", np.uint8), 0, 0, _META_MIN_LENGTH, _KEPT_META)


@numba.njit(cache=True)
def _varlen(data: np.ndarray, pos: int, end: int) -> tuple[int, int]:
    """A variable-length number and the position after it; -1 when it runs past `end` or past 8 bytes."""
    value = 0
    for _ in range(8):
        if pos >= end:
            return -1, pos
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos
    return -2, pos


@numba.njit(cache=True)
def _scan_chunks(data, pos, n_chunks, meta_min_length, kept_meta):
    """The refusal code (0: none), the tracks (program, channel, chunk), the notes each closed by a
    note-off, the notes closed at the end of a chunk and the kept meta events (chunk, tick, kind,
    start, size), each array sized to what no file of this many bytes can overflow."""
    size_all = len(data)
    events = size_all // 3 + 1  # a channel event holds 3 bytes at least (running status: delta and two data bytes)
    keys = np.empty((min(2048 * max(n_chunks, 1), size_all // 2 + 16 * min(n_chunks, size_all // 8 + 1) + 1), 3), np.int64)
    closed = np.zeros(len(keys), np.int64)
    metas = np.empty((size_all // 4 + 1, 5), np.int64)
    open_notes = np.empty((events, 5), np.int64)
    counts = np.zeros(3, np.int64)
    code = _walk(data, pos, n_chunks, meta_min_length, kept_meta, keys, closed, open_notes, metas, events, counts)
    n_keys, n_open, n_metas = counts
    return code, keys[:n_keys].copy(), closed[:n_keys].copy(), open_notes[:n_open].copy(), metas[:n_metas].copy()


@numba.njit(cache=True)
def _track(track_of, keys, n_keys, key, program, channel, chunk):
    """Create muspy's track for (program, channel) in this chunk unless it exists; the new track count."""
    if track_of[key] < 0:
        track_of[key] = n_keys
        keys[n_keys, 0] = program
        keys[n_keys, 1] = channel
        keys[n_keys, 2] = chunk
        n_keys += 1
    return n_keys


@numba.njit(cache=True)
def _walk(data, pos, n_chunks, meta_min_length, kept_meta, keys, closed, open_notes, metas, events, counts):
    """Every chunk's events as mido reads them and muspy uses them: per chunk, fresh channel programs
    and first-in-first-out note-ons per channel and pitch; a track per (program, channel) made at its
    first control change or first note-off that closes a note, and at the end of the chunk for every
    channel a note event touched (with its last program); notes still on are closed at the chunk's
    last tick. Fills the arrays, `counts` with how many of each, and returns the refusal code."""
    size_all = len(data)
    n_keys = n_metas = n_open = 0
    onsets = np.empty(events, np.int64)  # per note-on: tick, velocity, next one in its queue
    velocities = np.empty(events, np.int64)
    following = np.empty(events, np.int64)
    head = np.empty(2048, np.int64)  # per channel * 128 + pitch: its oldest sounding note-on, -1 if none
    tail = np.empty(2048, np.int64)
    sounding = np.empty(2048, np.int64)
    track_of = np.empty(2048, np.int64)  # per program * 16 + channel: its track, -1 if none yet
    touched = np.empty(16, np.int64)  # channels in the order of their first note event
    for chunk in range(n_chunks):
        if pos + 8 > size_all:
            return 2
        if data[pos] != 77 or data[pos + 1] != 84 or data[pos + 2] != 114 or data[pos + 3] != 107:  # MTrk
            return 1
        size = (np.int64(data[pos + 4]) << 24) | (np.int64(data[pos + 5]) << 16) | (np.int64(data[pos + 6]) << 8) | np.int64(data[pos + 7])
        pos += 8
        end = pos + size
        if end > size_all:
            return 2
        head[:] = -1
        sounding[:] = 0
        track_of[:] = -1
        programs = np.zeros(16, np.int64)
        n_touched = 0
        is_touched = np.zeros(16, np.bool_)
        n_ons = 0
        status = 0
        tick = 0
        while pos < end:
            delta, pos = _varlen(data, pos, end)
            if delta < 0:
                return 10 if delta == -1 else 11
            tick += delta
            if pos >= end:
                return 10
            byte = data[pos]
            if byte & 0x80:
                pos += 1
                status = byte
                if byte >= 0xF0:  # meta and sysex events end a running status, as the MIDI file spec says
                    status = 0
                    if byte == 0xFF:
                        if pos >= end:
                            return 10
                        kind = data[pos]
                        length, pos = _varlen(data, pos + 1, end)
                        if length < 0:
                            return 10 if length == -1 else 11
                        start = pos
                        pos += length
                        if pos > end:
                            return 10
                        if length < meta_min_length[kind] or (kind == 0x00 and length == 1):
                            return 7
                        if kind == 0x2F and pos != end:
                            return 8
                        if kind == 0x54 and data[start] >> 5 > 3:
                            return 9
                        if kept_meta[kind]:
                            metas[n_metas, 0] = chunk
                            metas[n_metas, 1] = tick
                            metas[n_metas, 2] = kind
                            metas[n_metas, 3] = start
                            metas[n_metas, 4] = length
                            n_metas += 1
                    elif byte == 0xF0 or byte == 0xF7:
                        length, pos = _varlen(data, pos, end)
                        if length < 0:
                            return 10 if length == -1 else 11
                        pos += length
                    else:
                        return 3
                    continue
            elif status == 0:
                return 4
            two = status < 0xC0 or status >= 0xE0
            if pos + (2 if two else 1) > end:
                return 10
            first = data[pos]
            second = data[pos + 1] if two else 0
            pos += 2 if two else 1
            if first > 127 or second > 127:
                return 5
            kind = status & 0xF0
            channel = status & 0x0F
            if kind == 0xC0:
                if first != programs[channel] and sounding[channel * 128 : channel * 128 + 128].any():
                    return 6
                programs[channel] = first
                continue
            if kind == 0x80 or kind == 0x90:
                if not is_touched[channel]:
                    is_touched[channel] = True
                    touched[n_touched] = channel
                    n_touched += 1
                note = channel * 128 + first
                if kind == 0x90 and second > 0:
                    onsets[n_ons] = tick
                    velocities[n_ons] = second
                    following[n_ons] = -1
                    if head[note] < 0:
                        head[note] = n_ons
                    else:
                        following[tail[note]] = n_ons
                    tail[note] = n_ons
                    sounding[note] += 1
                    n_ons += 1
                    continue
                if sounding[note] == 0:
                    continue
                head[note] = following[head[note]]
                sounding[note] -= 1
            elif kind != 0xB0:
                continue
            key = programs[channel] * 16 + channel
            n_keys = _track(track_of, keys, n_keys, key, programs[channel], channel, chunk)
            if kind != 0xB0:
                closed[track_of[key]] += 1
        if pos != end:
            return 10
        for t in range(n_touched):
            channel = touched[t]
            key = programs[channel] * 16 + channel
            n_keys = _track(track_of, keys, n_keys, key, programs[channel], channel, chunk)
            for pitch in range(128):
                on = head[channel * 128 + pitch]
                while on >= 0:
                    open_notes[n_open, 0] = track_of[key]
                    open_notes[n_open, 1] = onsets[on]
                    open_notes[n_open, 2] = tick - onsets[on]
                    open_notes[n_open, 3] = pitch
                    open_notes[n_open, 4] = velocities[on]
                    n_open += 1
                    on = following[on]
    counts[0], counts[1], counts[2] = n_keys, n_open, n_metas
    return 0


def _key(sharps: int, minor: int) -> tuple[int, str]:
    """muspy's root and mode of a key signature, through the same mido table it reads."""
    try:
        name = _key_signature_decode[(sharps, minor)]
    except KeyError:
        raise NotMuspyEquivalent(f"key signature ({sharps}, {minor}) is refused by mido") from None
    if name.endswith("m"):
        return note_str_to_note_num(name[:-1]), "minor"
    return note_str_to_note_num(name), "major"


def read_midi_arrays(path: str, resolution: int) -> ScoreArrays:
    """Notes of a MIDI file at `resolution` ticks per quarter, equal to muspy's reading of it."""
    with open(path, "rb") as f:
        data = f.read()
    layout = scan(data)
    score = symusic.Score.from_midi(data)
    if score.ticks_per_quarter != layout.tpq:
        raise NotMuspyEquivalent(f"symusic reads {score.ticks_per_quarter} ticks per quarter, mido {layout.tpq}")
    arrays = _note_arrays(score, layout)
    factor = resolution / layout.tpq
    return ScoreArrays(
        resolution=resolution,
        title=str(layout.title),
        tempos=[(_scaled(t, factor), float(tempo2bpm(mspq))) for t, mspq in layout.tempos],
        key_signatures=[(_scaled(t, factor), *_key(sf, mi), None) for t, sf, mi in layout.key_signatures],
        time_signatures=[(_scaled(t, factor), n, d) for t, n, d in layout.time_signatures],
        programs=layout.programs.tolist(),
        is_drum=(layout.channels == 9).tolist(),
        names=layout.names,
        reader="symusic",
        **_adjusted(*arrays, factor),
    )


def _note_arrays(score: symusic.Score, layout: _Layout) -> tuple[np.ndarray, ...]:
    """symusic's tracks of each chunk come sorted by channel then program, those without closed notes
    left out; match them to muspy's track indexes, checking program, drums and note count, and add
    the notes muspy closes at the end of a chunk, which symusic drops."""
    with_notes = np.flatnonzero(layout.closed)
    expected = with_notes[np.lexsort((layout.programs[with_notes], layout.channels[with_notes], layout.chunks[with_notes]))]
    found = [(t, count) for t in score.tracks if (count := t.note_num())]
    if len(found) != len(expected):
        raise NotMuspyEquivalent(f"symusic finds {len(found)} tracks with notes, the scan {len(expected)}")
    columns: list[list[np.ndarray]] = [[column] for column in layout.open_notes.T]
    scanned = zip(expected.tolist(), layout.programs[expected].tolist(), layout.channels[expected].tolist(), layout.closed[expected].tolist())
    for (track, count), (index, program, channel, closed) in zip(found, scanned):
        if (track.program, track.is_drum, count) != (program, channel == 9, closed):
            raise NotMuspyEquivalent(f"symusic's track {track.name!r} differs from the scan's")
        notes = track.notes.numpy()
        columns[0].append(np.full(count, index, np.int64))
        for column, name in zip(columns[1:], ("time", "duration", "pitch", "velocity")):
            column.append(notes[name].astype(np.int64))
    return tuple(np.concatenate(column) for column in columns)


def _scaled(tick: int, factor: float) -> int:
    return round(tick * factor)


def _adjusted(
    track: np.ndarray, time: np.ndarray, duration: np.ndarray, pitch: np.ndarray, velocity: np.ndarray, factor: float
) -> dict[str, np.ndarray]:
    """muspy's order (by track, then time, pitch, duration, velocity at the file's resolution) and
    its adjust_resolution: Python's round, half to even, of each time and each end times the factor."""
    order = np.lexsort((velocity, duration, pitch, time, track))
    track, time, duration, pitch, velocity = (a[order] for a in (track, time, duration, pitch, velocity))
    onset = np.rint(time * factor).astype(np.int64)
    end = np.rint((time + duration) * factor).astype(np.int64)
    return {"track": track, "onset": onset, "duration": end - onset, "pitch": pitch, "velocity": velocity}
