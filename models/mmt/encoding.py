"""Multitrack Music Transformer (MMT) encoding: notes <-> (n, 6) integer code arrays.

Follows Dong et al., "Multitrack Music Transformer" (ICASSP 2023): every event is one row of six
fields (type, beat, position, pitch, duration, instrument), so the model emits a whole note per
step instead of four or five tokens. A song is start-of-song, one instrument event per
instrument, start-of-notes, the notes in time order, end-of-song.
"""

from __future__ import annotations

from pathlib import Path

import muspy
import numpy as np
import pyarrow as pa

RESOLUTION = 12  # time steps per quarter note
MAX_BEAT = 256  # beats 0..255 encodable in a training window
MAX_SEQ_LEN = 1024
KNOWN_DURATIONS = (
    *range(1, 13), 15, 16, 18, 20, 21, 24, 30, 36, 40, 42, 48, 60, 72, 84, 96, 120, 144, 168, 192, 384,
)  # ticks at RESOLUTION
FIELDS = ("type", "beat", "position", "pitch", "duration", "instrument")
BEAT, POSITION, PITCH, DURATION, INSTRUMENT = range(1, 6)  # column of each field in a code row
TYPE_START, TYPE_INSTRUMENT, TYPE_START_NOTES, TYPE_NOTE, TYPE_END = 0, 1, 2, 3, 4
FIELD_SIZES = (5, MAX_BEAT + 1, RESOLUTION + 1, 129, len(KNOWN_DURATIONS) + 1, 65)  # 0 = "none" in every field but type

TYPE_NAMES = ("start-of-song", "instrument", "start-of-notes", "note", "end-of-song")

# The 64 instruments and the program each decodes to, in code order (code = index + 1).
INSTRUMENT_PROGRAMS: dict[str, int] = {
    "piano": 0, "electric-piano": 4, "harpsichord": 6, "clavinet": 7,
    "celesta": 8, "glockenspiel": 9, "music-box": 10, "vibraphone": 11,
    "marimba": 12, "xylophone": 13, "tubular-bells": 14, "dulcimer": 15,
    "organ": 16, "church-organ": 19, "accordion": 21, "harmonica": 22, "bandoneon": 23,
    "nylon-string-guitar": 24, "steel-string-guitar": 25, "electric-guitar": 26,
    "bass": 32, "electric-bass": 33, "slap-bass": 36, "synth-bass": 38,
    "violin": 40, "viola": 41, "cello": 42, "contrabass": 43, "harp": 46, "timpani": 47,
    "strings": 49, "synth-strings": 50, "voices": 52, "orchestra-hit": 55,
    "trumpet": 56, "trombone": 57, "tuba": 58, "horn": 60, "brasses": 61, "synth-brasses": 62,
    "soprano-saxophone": 64, "alto-saxophone": 65, "tenor-saxophone": 66, "baritone-saxophone": 67,
    "oboe": 68, "english-horn": 69, "bassoon": 70, "clarinet": 71,
    "piccolo": 72, "flute": 73, "recorder": 74, "pan-flute": 75, "ocarina": 79,
    "lead": 80, "pad": 88,
    "sitar": 104, "banjo": 105, "shamisen": 106, "koto": 107, "kalimba": 108, "bag-pipe": 109, "shehnai": 111,
    "melodic-tom": 117, "synth-drums": 118,
}
INSTRUMENTS = tuple(INSTRUMENT_PROGRAMS)

# General MIDI program -> instrument name; None for programs the vocabulary leaves out
# (breath/whistle pipes, synth effects, most percussive and all sound effects).
PROGRAM_INSTRUMENTS: tuple[str | None, ...] = (
    *["piano"] * 4, *["electric-piano"] * 2, "harpsichord", "clavinet",
    "celesta", "glockenspiel", "music-box", "vibraphone", "marimba", "xylophone", "tubular-bells", "dulcimer",
    *["organ"] * 3, "church-organ", "organ", "accordion", "harmonica", "bandoneon",
    "nylon-string-guitar", "steel-string-guitar", *["electric-guitar"] * 6,
    "bass", *["electric-bass"] * 3, *["slap-bass"] * 2, *["synth-bass"] * 2,
    "violin", "viola", "cello", "contrabass", "strings", "strings", "harp", "timpani",
    "strings", "strings", "synth-strings", "synth-strings", *["voices"] * 3, "orchestra-hit",
    "trumpet", "trombone", "tuba", "trumpet", "horn", "brasses", "synth-brasses", "synth-brasses",
    "soprano-saxophone", "alto-saxophone", "tenor-saxophone", "baritone-saxophone",
    "oboe", "english-horn", "bassoon", "clarinet",
    "piccolo", "flute", "recorder", "pan-flute", None, None, None, "ocarina",
    *["lead"] * 8, *["pad"] * 8, *[None] * 8,
    "sitar", "banjo", "shamisen", "koto", "kalimba", "bag-pipe", "violin", "shehnai",
    *[None] * 5, "melodic-tom", "synth-drums", "synth-drums",
    *[None] * 8,
)

# Lookup tables used on whole arrays: program -> instrument code (0 = unmapped), code -> program.
_PROGRAM_CODE = np.array([0 if name is None else INSTRUMENTS.index(name) + 1 for name in PROGRAM_INSTRUMENTS])
_CODE_PROGRAM = np.array([-1, *INSTRUMENT_PROGRAMS.values()])
_DURATIONS = np.array(KNOWN_DURATIONS)
_NOTE_FIELDS = slice(1, 6)


class EncodingError(ValueError):
    """A song that has nothing the MMT vocabulary can encode."""


def snap_durations(ticks: np.ndarray) -> np.ndarray:
    """Nearest known duration (ties to the shorter one; at least the shortest) for durations in ticks."""
    ticks = np.asarray(ticks, dtype=np.int64)
    right = np.clip(np.searchsorted(_DURATIONS, ticks), 1, len(_DURATIONS) - 1)
    left = right - 1
    pick_left = ticks - _DURATIONS[left] <= _DURATIONS[right] - ticks
    return _DURATIONS[np.where(pick_left, left, right)]


def extract_notes(
    onset: np.ndarray,
    duration: np.ndarray,
    pitch: np.ndarray,
    program: np.ndarray,
    is_drum: np.ndarray,
    resolution: int,
) -> np.ndarray:
    """The song as the published data preparation stores it: (n, 5) rows of (beat, position, pitch,
    duration, program), durations in raw ticks at RESOLUTION, sorted and without duplicates.

    Timing is rescaled as muspy's ``adjust_resolution`` does (onset and offset rounded
    half-to-even) and zero durations become one tick, so a table and the Music it came from agree.
    Drum notes and programs the vocabulary leaves out are dropped. Duplicates go on the raw row,
    before programs map to instruments and durations snap: unison notes of programs 0 and 1, or
    raw durations 25 and 26 at one onset, stay two notes, as in the published code. The song is
    shifted by whole beats so that its first note falls in beat 0. Pitches are clipped to 0..127
    as the notes table stores them.
    """
    onset, duration = np.asarray(onset, dtype=np.int64), np.asarray(duration, dtype=np.int64)
    pitch = np.clip(np.asarray(pitch, dtype=np.int64), 0, 127)
    program, is_drum = np.asarray(program, dtype=np.int64), np.asarray(is_drum, dtype=bool)
    if len(onset) == 0:
        raise EncodingError("no notes to encode")
    if is_drum.all():
        raise EncodingError(f"drums only: all {len(onset)} notes are on drum tracks, which MMT leaves out")
    keep = ~is_drum & (program >= 0) & (program <= 127)
    keep[keep] = _PROGRAM_CODE[program[keep]] > 0
    if not keep.any():
        programs = sorted(set(program[~is_drum].tolist()))
        raise EncodingError(f"no instrument the vocabulary knows: programs {programs} map to none of the 64")
    factor = RESOLUTION / resolution
    start = np.round(onset[keep] * factor).astype(np.int64)
    end = np.round((onset[keep] + duration[keep]) * factor).astype(np.int64)
    beat, position = np.divmod(start, RESOLUTION)
    notes = np.unique(np.stack([beat, position, pitch[keep], np.maximum(end - start, 1), program[keep]], axis=1), axis=0)
    notes[:, 0] -= notes[0, 0]
    return notes


def encode_notes(notes: np.ndarray) -> np.ndarray:
    """Codes of (beat, position, pitch, raw duration, program) rows in their given order.

    Start-of-song, one instrument event per instrument of the notes (in code order),
    start-of-notes, one row per note, end-of-song. Rows are not cut: a training window
    (``models.mmt.batches.window``) brings beats into the vocabulary and the length to the limit.
    """
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, 5)
    instrument = _PROGRAM_CODE[notes[:, 4]]
    instruments = np.unique(instrument)
    dur_code = np.searchsorted(_DURATIONS, snap_durations(notes[:, 3])) + 1
    codes = np.zeros((len(notes) + len(instruments) + 3, len(FIELDS)), dtype=np.int64)
    codes[0, 0] = TYPE_START
    codes[1 : 1 + len(instruments), 0] = TYPE_INSTRUMENT
    codes[1 : 1 + len(instruments), INSTRUMENT] = instruments
    codes[1 + len(instruments), 0] = TYPE_START_NOTES
    codes[2 + len(instruments) : -1, 0] = TYPE_NOTE
    codes[2 + len(instruments) : -1, _NOTE_FIELDS] = np.stack(
        [notes[:, 0] + 1, notes[:, 1] + 1, notes[:, 2] + 1, dur_code, instrument], axis=1
    )
    codes[-1, 0] = TYPE_END
    return codes


def encode_arrays(
    onset: np.ndarray,
    duration: np.ndarray,
    pitch: np.ndarray,
    program: np.ndarray,
    is_drum: np.ndarray,
    resolution: int,
) -> np.ndarray:
    """Codes of a whole song given per-note arrays in ticks at ``resolution`` per quarter."""
    return encode_notes(extract_notes(onset, duration, pitch, program, is_drum, resolution))


def encode(notes: pa.Table) -> np.ndarray:
    """Codes (int64, shape (n, 6)) of one whole song's rows of the `notes` table."""
    if notes.num_rows == 0:
        raise EncodingError("no notes to encode")
    cols = {name: notes.column(name).to_numpy() for name in ("onset", "duration", "pitch", "program", "is_drum")}
    return encode_arrays(**cols, resolution=int(notes.column("resolution")[0].as_py()))


def encode_music(music: muspy.Music) -> np.ndarray:
    """Codes of a whole muspy Music; same rules as `encode`."""
    rows = [
        (note.time, note.duration, note.pitch, track.program, track.is_drum)
        for track in music.tracks
        for note in track.notes
    ]
    onset, duration, pitch, program, is_drum = np.array(rows, dtype=np.int64).reshape(-1, 5).T
    return encode_arrays(onset, duration, pitch, program, is_drum, int(music.resolution))


def _in_range(codes: np.ndarray) -> np.ndarray:
    return ((codes >= 0) & (codes < np.array(FIELD_SIZES))).all(axis=1)


def decode(codes: np.ndarray) -> muspy.Music:
    """Music at RESOLUTION with one track per instrument that has notes, tracks ordered by program.

    Generated sequences are taken as they come: reading stops at the first end-of-song, and
    rows with an out-of-range field or a note row with a "none" field are skipped.
    """
    codes = np.asarray(codes, dtype=np.int64).reshape(-1, len(FIELDS))
    ends = np.flatnonzero(codes[:, 0] == TYPE_END)
    if len(ends):
        codes = codes[: ends[0]]
    notes = codes[_in_range(codes) & (codes[:, 0] == TYPE_NOTE) & (codes[:, _NOTE_FIELDS] > 0).all(axis=1)]
    music = muspy.Music(resolution=RESOLUTION, tempos=[muspy.Tempo(time=0, qpm=100.0)])
    for code in np.unique(notes[:, 5]):
        rows = notes[notes[:, 5] == code]
        onsets = (rows[:, 1] - 1) * RESOLUTION + rows[:, 2] - 1
        durations = _DURATIONS[rows[:, 4] - 1]
        music.tracks.append(
            muspy.Track(
                program=int(_CODE_PROGRAM[code]),
                name=INSTRUMENTS[code - 1],
                notes=[
                    muspy.Note(time=int(t), pitch=int(p), duration=int(d), velocity=muspy.DEFAULT_VELOCITY)
                    for t, p, d in zip(onsets, rows[:, 3] - 1, durations)
                ],
            )
        )
    return music


def write_midi(codes: np.ndarray, path: str | Path) -> Path:
    """Decode `codes` and write them as a MIDI file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    decode(codes).write_midi(str(path))
    return path


def describe(codes: np.ndarray) -> str:
    """One human-readable line per row, for reading generated sequences."""
    lines = []
    for row in np.asarray(codes, dtype=np.int64).reshape(-1, len(FIELDS)):
        kind, beat, position, pitch, duration, instrument = (int(v) for v in row)
        if not _in_range(row[None])[0]:
            lines.append(f"invalid {row.tolist()}")
        elif kind == TYPE_INSTRUMENT:
            lines.append(f"instrument {INSTRUMENTS[instrument - 1] if instrument else 'none'}")
        elif kind == TYPE_NOTE:
            name = INSTRUMENTS[instrument - 1] if instrument else "none"
            ticks = KNOWN_DURATIONS[duration - 1] if duration else 0
            lines.append(f"note beat={beat - 1} position={position - 1} pitch={pitch - 1} duration={ticks} {name}")
        else:
            lines.append(TYPE_NAMES[kind])
    return "\n".join(lines)


def validate(codes: np.ndarray) -> list[str]:
    """The problems of a code array; empty when it is a well-formed MMT sequence.

    Checks the shape, every field's range, the type order (start-of-song, instruments,
    start-of-notes, notes, end-of-song last), "none" fields where a row type has no value and
    values where it needs one, and that note beats never decrease, the order generation enforces.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != len(FIELDS) or not np.issubdtype(codes.dtype, np.integer):
        return [f"expected an integer array of shape (n, {len(FIELDS)}), got {codes.dtype} {codes.shape}"]
    if len(codes) == 0:
        return ["empty sequence"]
    problems = []
    for i, (field, size) in enumerate(zip(FIELDS, FIELD_SIZES)):
        bad = np.flatnonzero((codes[:, i] < 0) | (codes[:, i] >= size))
        if len(bad):
            problems.append(f"{field} out of range [0, {size}) in {len(bad)} rows, first at row {bad[0]}")
    if problems:
        return problems
    types = codes[:, 0]
    if types[0] != TYPE_START:
        problems.append(f"first row is {TYPE_NAMES[types[0]]}, not start-of-song")
    if types[-1] != TYPE_END:
        problems.append(f"last row is {TYPE_NAMES[types[-1]]}, not end-of-song")
    for kind in (TYPE_START, TYPE_START_NOTES, TYPE_END):
        if (count := int((types == kind).sum())) != 1:
            problems.append(f"{count} {TYPE_NAMES[kind]} rows, expected 1")
    if len(back := np.flatnonzero(np.diff(types) < 0)):
        problems.append(f"event types out of order at row {back[0] + 1}")
    values = codes[:, 1:] > 0
    is_note, is_instrument = types == TYPE_NOTE, types == TYPE_INSTRUMENT
    expected = np.zeros_like(values)
    expected[is_note] = True
    expected[is_instrument, 4] = True
    if len(bad := np.flatnonzero((values != expected).any(axis=1))):
        problems.append(f"{len(bad)} rows with fields set or missing for their type, first at row {bad[0]}")
    if len(back := np.flatnonzero(np.diff(codes[is_note, 1]) < 0)):
        problems.append(f"note beats decrease at note {back[0] + 1}")
    return problems
