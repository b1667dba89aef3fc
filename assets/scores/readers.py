"""Read one ScoreItem into a muspy.Music, or say precisely why it cannot be read.

Every failure is a RejectError carrying the stage it failed at ("file", "format",
"parse", "content") and an error type, so the ingestion records it as a reject
instead of crashing the partition. Files are checked with stat before any byte is
read, so a huge or unreadable file costs nothing, and XML is checked for entity
declarations before a parser expands them.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from xml.etree import ElementTree
from xml.parsers import expat

import music21
import muspy

from .datasets import ScoreItem
from .datasets.formats import abc_tune_text, read_abc_lines
from .midi_arrays import ScoreArrays, read_midi_arrays
from .music21_convert import from_music21


class RejectError(Exception):
    """An item that cannot become a score; `stage` and `error_type` classify it for the rejects table."""

    def __init__(self, stage: str, error_type: str, message: str):
        super().__init__(message)
        self.stage = stage
        self.error_type = error_type


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# Formats read by XML parsers (MEI, read by music21, is XML too).
XML_FORMATS = frozenset({"musicxml", "music21"})


def read_item(
    item: ScoreItem, resolution: int = 24, max_bytes: int = 50_000_000, max_notes: int = 2_000_000
) -> muspy.Music:
    """Parse `item` into muspy at `resolution` ticks per quarter; raises RejectError."""
    return _read(item, MUSPY_PARSERS.get(item.format), resolution, max_bytes, max_notes)


def read_score(
    item: ScoreItem, resolution: int = 24, max_bytes: int = 50_000_000, max_notes: int = 2_000_000
) -> muspy.Music | ScoreArrays:
    """What ingestion reads: read_item's score, except MIDI comes as symusic's note arrays wherever
    they are muspy's reading of the file, with no per-note objects; raises RejectError."""
    return _read(item, PARSERS.get(item.format), resolution, max_bytes, max_notes)


def _read(
    item: ScoreItem, parser: Parser | None, resolution: int, max_bytes: int, max_notes: int
) -> muspy.Music | ScoreArrays:
    path = Path(item.path)
    check_file(path, max_bytes)
    if parser is None:
        raise RejectError("format", "UnsupportedFormat", f"unsupported file type {path.suffix or '(none)'}: {path}")
    if item.format in XML_FORMATS:
        check_xml(path, max_bytes)
    try:
        score = parser(item, resolution)
    except RejectError:
        raise
    except Exception as error:  # parsers raise anything on bad input; all of it is a reject
        raise RejectError("parse", type(error).__name__, f"cannot parse {item.item_id}: {_describe(error)}") from error
    if isinstance(score, ScoreArrays):
        check_note_count(item, len(score.pitch), max_notes)
        return score
    score.adjust_resolution(resolution)
    score.metadata = score.metadata or muspy.Metadata()
    score.metadata.source_filename = path.name
    score.metadata.source_format = item.format
    check_note_count(item, sum(len(track.notes) for track in score.tracks), max_notes)
    return score


def check_note_count(item: ScoreItem, notes: int, max_notes: int) -> None:
    if not notes:
        raise RejectError("content", "EmptyScore", f"{item.item_id} holds no notes")
    if notes > max_notes:
        raise RejectError("content", "TooManyNotes", f"{item.item_id} holds {notes} notes, more than the limit of {max_notes}")


def check_file(path: Path, max_bytes: int) -> None:
    """Not a symlink, existence, type, read permission for this process and size, from stat alone.

    Listings resolve every symlink whose target lies inside its dataset folder, so a path that is
    still a symlink is one they refused: its target is never opened.
    """
    if path.is_symlink():
        raise RejectError("file", "SymlinkOutsideDataset", f"symlink points outside the dataset folder: {path}")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise RejectError("file", "FileNotFoundError", f"no such file: {path}") from None
    except OSError as error:
        raise RejectError("file", type(error).__name__, f"cannot stat {path}: {error}") from error
    if not stat.S_ISREG(st.st_mode):
        raise RejectError("file", "NotARegularFile", f"not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise RejectError("file", "PermissionError", f"no read permission: {path}")
    if st.st_size == 0:
        raise RejectError("file", "EmptyFile", f"empty file: {path}")
    if st.st_size > max_bytes:
        raise RejectError("file", "FileTooLarge", f"file too large: {path} has {st.st_size} bytes > {max_bytes}")


class _RootElement(Exception):
    """The root element began: no entity can be declared after it."""


def check_xml(path: Path, max_bytes: int) -> None:
    """Refuse XML (plain or zipped .mxl) that declares entities, before muspy or music21 parse it.

    Entities expand within expat's amplification guard into text that the readers copy into
    every note; real MusicXML never declares any (its DOCTYPE only names the public DTD). Zip
    members are also held to ``max_bytes`` uncompressed, which zipfile enforces while reading.
    """
    if not zipfile.is_zipfile(path):
        with path.open("rb") as f:
            _refuse_entities(f, path.name)
        return
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.file_size > max_bytes:
                raise RejectError(
                    "file", "FileTooLarge", f"{path}: member {info.filename!r} has {info.file_size} bytes > {max_bytes}"
                )
            if not info.is_dir() and info.filename.lower().endswith((".xml", ".musicxml")):
                with archive.open(info) as member:
                    _refuse_entities(member, f"{path.name}:{info.filename}")


def _refuse_entities(stream: IO[bytes], where: str) -> None:
    """Scan the prolog with expat; a file that is not well-formed is left to the parsers to report."""

    def declared(*_: object) -> None:
        raise RejectError("parse", "XMLEntities", f"{where} declares XML entities; refused before parsing")

    def root(*_: object) -> None:
        raise _RootElement

    parser = expat.ParserCreate()
    parser.EntityDeclHandler = declared
    parser.UnparsedEntityDeclHandler = declared
    parser.StartElementHandler = root
    try:
        parser.ParseFile(stream)
    except (_RootElement, expat.ExpatError):
        return


_MTHD = struct.Struct(">4sIHHH")  # "MThd", header length, format, track count, division
_CHUNK = struct.Struct(">4sI")  # chunk type, data length


def _read_midi_muspy(item: ScoreItem, resolution: int) -> muspy.Music:
    check_track_count(Path(item.path))
    return muspy.read_midi(item.path)


def _read_midi(item: ScoreItem, resolution: int) -> muspy.Music | ScoreArrays:
    """symusic's note arrays where they are provably muspy's reading, else muspy's reading.

    When both fail the reject keeps both errors: symusic's alone hides that muspy failed too, and
    muspy's alone hides why the fast reader was not used.
    """
    check_track_count(Path(item.path))
    try:
        return read_midi_arrays(item.path, resolution)
    except Exception as symusic_error:  # noqa: BLE001 - symusic and the scan raise anything; muspy decides
        try:
            return muspy.read_midi(item.path)
        except Exception as muspy_error:
            raise RejectError(
                "parse",
                type(muspy_error).__name__,
                f"cannot parse {item.item_id}: symusic: {_describe(symusic_error)}; muspy: {_describe(muspy_error)}",
            ) from muspy_error


def check_track_count(path: Path) -> None:
    """Reject a MIDI file whose header claims more tracks than it holds.

    mido stops quietly at the end of the file, so such a file would otherwise be rejected
    as holding no notes. Headers that do not parse and chunks cut short by a truncated
    file are left to the parser to report.
    """
    end = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(_MTHD.size)
        if len(header) < _MTHD.size:
            return
        magic, length, _, claimed, _ = _MTHD.unpack(header)
        if magic != b"MThd" or length < 6 or f.seek(_CHUNK.size + length) > end:
            return
        found = 0
        while found < claimed and (chunk := f.read(_CHUNK.size)):
            if len(chunk) < _CHUNK.size:
                return
            kind, size = _CHUNK.unpack(chunk)
            if f.seek(size, os.SEEK_CUR) > end:
                return
            found += kind == b"MTrk"
    if found < claimed:
        raise RejectError(
            "parse", "TrackCountMismatch", f"MIDI header claims {claimed} tracks but the file holds {found}: {path}"
        )


def _read_musicxml(item: ScoreItem, resolution: int) -> muspy.Music:
    """muspy's reader: on the Bach chorales it gives the same notes as music21 with repeats
    expanded, at a tenth of the time; music21 is the fallback for files it cannot handle.

    When both fail the reject keeps both errors, since either alone misleads: muspy's may only be
    a gap in its coverage, and music21's does not show that muspy failed too.
    """
    try:
        music = muspy.read_musicxml(item.path)
    except Exception as muspy_error:  # muspy's reader fails on valid files it does not cover; music21 decides
        try:
            return _read_music21(item, resolution)
        except Exception as music21_error:
            raise RejectError(
                "parse",
                type(music21_error).__name__,
                f"cannot parse {item.item_id}: muspy: {_describe(muspy_error)}; music21: {_describe(music21_error)}",
            ) from music21_error
    _fix_parts(music, item.path)
    return music


def _score_parts(path: str) -> list[tuple[str, int | None]]:
    """(part name, 1-based MIDI program) of every <score-part>, read from the (possibly zipped) file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            container = ElementTree.fromstring(archive.read("META-INF/container.xml"))
            rootfile = next(e.get("full-path") for e in container.iter() if e.tag.endswith("rootfile"))
            root = ElementTree.fromstring(archive.read(rootfile))
    else:
        root = ElementTree.parse(path).getroot()
    parts = []
    for part in root.iter("score-part"):
        program = part.findtext("midi-instrument/midi-program")
        parts.append(((part.findtext("part-name") or "").strip(), int(program) if program else None))
    return parts


def _fix_parts(music: muspy.Music, path: str) -> None:
    """muspy names a track after its <instrument-name> ("Instrument 1" in many chorales) and keeps
    MusicXML's 1-based <midi-program>; use the part name and the 0-based General MIDI program."""
    parts = _score_parts(path)
    if len(parts) != len(music.tracks):
        return
    for track, (name, program) in zip(music.tracks, parts):
        track.name = name or track.name
        if program is not None and track.program == program:
            track.program = max(0, program - 1)


@contextmanager
def _no_beaming() -> Iterator[None]:
    """music21's ABC import engraves beams, over half its time; beams carry no note information."""
    original = music21.stream.Stream.makeBeams
    music21.stream.Stream.makeBeams = lambda self, *args, **kwargs: None if kwargs.get("inPlace") else self
    try:
        yield
    finally:
        music21.stream.Stream.makeBeams = original


def _read_abc(item: ScoreItem, resolution: int) -> muspy.Music:
    """Only the one tune's text is parsed: music21 would otherwise parse every tune in the file."""
    if item.number is None:
        text = "".join(read_abc_lines(item.path))
    else:
        text = abc_tune_text(item.path, item.number)
    with _no_beaming():
        score = music21.converter.parseData(text, format="abc")
    return from_music21(score, resolution)


def _read_humdrum(item: ScoreItem, resolution: int) -> muspy.Music:
    return from_music21(music21.converter.parse(item.path, format="humdrum", forceSource=True), resolution)


def _read_music21(item: ScoreItem, resolution: int) -> muspy.Music:
    return from_music21(music21.converter.parse(item.path, forceSource=True), resolution)


Parser = Callable[[ScoreItem, int], muspy.Music | ScoreArrays]
MUSPY_PARSERS: dict[str, Parser] = {
    "midi": _read_midi_muspy,
    "musicxml": _read_musicxml,
    "abc": _read_abc,
    "humdrum": _read_humdrum,
    "music21": _read_music21,
}
# What ingestion reads: every format as read_item reads it, MIDI through symusic first.
PARSERS: dict[str, Parser] = MUSPY_PARSERS | {"midi": _read_midi}
