"""Part-labelled note sequences for automatic instrumentation (Dong et al., ISMIR 2021, "Arranger").

Instrumentation is learned as per-note part classification of a downmix: every note of a song's
mapped tracks goes into one sequence sorted by (onset, pitch) and keeps the label of the part it
came from. A `Scheme` says which parts exist and which track feeds which part.

Preparation of one song (:func:`extract`), following Arranger's ``collect_*.py``:

- drum tracks never carry a part label; tracks the scheme cannot map are dropped;
- times are resampled to ``RESOLUTION`` steps per quarter (onset and duration each rounded half to
  even, as ``muspy.Music.adjust_resolution`` does) and notes that become zero-length are dropped;
- notes with the same onset and pitch in the mixture are one key on a keyboard and would carry
  contradicting targets, so one is kept: the shortest, then the one of the lower label. The voice
  that moves on first keeps its note and stays continuous; the voice holding longer loses a note
  whose pitch is sounding anyway. (Keeping the longest instead breaks the moving voice: the
  monophonic closest-pitch baseline drops from about 91% to 82% on the Bach chorales.)
  Arranger collapses only exact repeats (same onset, pitch and duration) inside a part and keeps
  voices meeting in unison, shorter note first; ``keep_unisons=True`` does the same, to compare
  with its published figures;
- a song is skipped when fewer than two parts have more than 10 notes. Dropping unmapped tracks
  only makes a song unusable through this rule: what remains is still a valid downmix of the
  mapped parts, as in Arranger, which leaves out, for instance, the instruments doubling a
  chorale's voices.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from assets.core.rejects import Reject
from assets.scores.songs import assign_splits, iter_songs
from models.part_separation import RESOLUTION, PartSong

MIN_PART_NOTES = 10  # a part counts as active with more notes than this


@dataclass(frozen=True)
class Skip:
    song: str
    reason: str


@dataclass(frozen=True)
class Scheme:
    name: str
    labels: tuple[str, ...]
    label_of: Callable[[str, int, int], int | None]
    """(part name, program, order among the song's pitched tracks) -> label index, or None to drop."""


def _tokens(name: str) -> list[str]:
    """'Violin1' -> ['violin', '1']; '2nd Violin' -> ['2', 'nd', 'violin']; 'S.' -> ['s']."""
    return re.findall(r"[a-z]+|\d+", name.lower())


_SATB_WORDS = {
    "soprano": 0, "sopran": 0, "sop": 0, "s": 0,
    "alto": 1, "alt": 1, "a": 1,
    "tenor": 2, "ten": 2, "t": 2,
    "bass": 3, "bassus": 3, "bs": 3, "b": 3,
}  # fmt: skip


def satb_label(name: str, program: int, order: int) -> int | None:
    """The voice named by the first word, so 'Soprano 2', 'S.' and 'Bass Continuo' map, 'Bassoon' does not."""
    words = [t for t in _tokens(name) if not t.isdigit()]
    return _SATB_WORDS.get(words[0]) if words else None


_VIOLIN = {"violin", "violino", "violine", "vn", "vln", "vl"}
_VIOLA = {"viola", "vla", "va", "bratsche"}
_CELLO = {"cello", "violoncello", "vc", "vlc"}
_FIRST = {"1", "i", "first", "primo"}
_SECOND = {"2", "ii", "second", "secondo"}


def quartet_label(name: str, program: int, order: int) -> int | None:
    """Violin 1, violin 2, viola, cello from the name; score order when the name does not say.

    An unnumbered violin is the first violin only as the top track. A generic name ('String
    Ensemble 1', 'Acoustic Grand Piano', as exported in the music21 quartets) takes the label of
    its position among the first four tracks; later tracks are dropped.
    """
    words = set(_tokens(name))
    if words & _VIOLIN:
        if words & _SECOND:
            return 1
        return 0 if words & _FIRST or order == 0 else 1
    if words & _VIOLA:
        return 2
    if words & _CELLO:
        return 3
    return order if order < 4 else None


def lmd_label(name: str, program: int, order: int) -> int | None:
    """Arranger's Lakh MIDI families by General MIDI program; other programs are dropped."""
    if 0 <= program < 8:
        return 0
    if 24 <= program < 32:
        return 1
    if 32 <= program < 40:
        return 2
    if 40 <= program < 46 or 48 <= program < 52:
        return 3
    if 56 <= program < 64:
        return 4
    return None


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("satb", ("Soprano", "Alto", "Tenor", "Bass"), satb_label),
        Scheme("string_quartet", ("Violin 1", "Violin 2", "Viola", "Cello"), quartet_label),
        Scheme("lmd", ("Piano", "Guitar", "Bass", "Strings", "Brass"), lmd_label),
    )
}
DEFAULT_SCHEME = {
    "bach_chorales": "satb",
    "haydn_quartets": "string_quartet",
    "mozart_quartets": "string_quartet",
    "beethoven_quartets": "string_quartet",
}


def default_scheme(dataset: str) -> Scheme:
    return SCHEMES[DEFAULT_SCHEME.get(dataset, "lmd")]


def scheme_for(name: str, dataset: str) -> Scheme:
    """The scheme called ``name``, or the dataset's default one when ``name`` is empty."""
    if name and name not in SCHEMES:
        raise ValueError(f"unknown part scheme {name!r}; choose from {sorted(SCHEMES)}")
    return SCHEMES[name] if name else default_scheme(dataset)


def resample(ticks: np.ndarray, resolution: np.ndarray | int) -> np.ndarray:
    """Ticks at `resolution` per quarter to RESOLUTION per quarter, rounded half to even."""
    return np.rint(np.asarray(ticks, np.float64) * RESOLUTION / resolution).astype(np.int64)


def _track_labels(notes: pa.Table, scheme: Scheme) -> tuple[np.ndarray, list[str]]:
    """Label per row (-1: drum or unmapped track) and the names of the unmapped pitched tracks."""
    track = notes.column("track").to_numpy()
    tracks, first, inverse = np.unique(track, return_index=True, return_inverse=True)
    names = notes.column("part_name").take(pa.array(first)).to_pylist()
    programs = notes.column("program").to_numpy()[first]
    drums = notes.column("is_drum").to_numpy(zero_copy_only=False)[first]
    by_track = np.full(len(tracks), -1, np.int64)
    unmapped = []
    order = 0
    for i in range(len(tracks)):  # few tracks per song; the per-row work below stays vectorised
        if drums[i]:
            continue
        label = scheme.label_of(names[i] or "", int(programs[i]), order)
        order += 1
        if label is None:
            unmapped.append(names[i] or f"track {tracks[i]}")
        else:
            by_track[i] = label
    return by_track[inverse.reshape(-1)], unmapped


def extract(notes: pa.Table, scheme: Scheme, split: str, keep_unisons: bool = False) -> PartSong | Skip:
    """One song's note rows (schema `tables.NOTES`) as a labelled downmix, or why it is skipped."""
    song = notes.column("song")[0].as_py()
    label, unmapped = _track_labels(notes, scheme)
    res = notes.column("resolution").to_numpy()
    onset = resample(notes.column("onset").to_numpy(), res)
    duration = resample(notes.column("duration").to_numpy(), res)
    pitch = notes.column("pitch").to_numpy().astype(np.int64)
    keep = (label >= 0) & (duration > 0)
    onset, duration, pitch, label = onset[keep], duration[keep], pitch[keep], label[keep]
    order = np.lexsort((label, duration, pitch, onset))
    onset, duration, pitch, label = onset[order], duration[order], pitch[order], label[order]
    first = np.ones(len(onset), bool)
    first[1:] = (onset[1:] != onset[:-1]) | (pitch[1:] != pitch[:-1])
    if keep_unisons:
        first[1:] |= (duration[1:] != duration[:-1]) | (label[1:] != label[:-1])
    onset, duration, pitch, label = onset[first], duration[first], pitch[first], label[first]
    counts = np.bincount(label, minlength=len(scheme.labels))
    if (counts > MIN_PART_NOTES).sum() < 2:
        per_part = dict(zip(scheme.labels, counts.tolist()))
        dropped = f"; unmapped tracks: {unmapped}" if unmapped else ""
        return Skip(song, f"fewer than two parts with more than {MIN_PART_NOTES} notes {per_part}{dropped}")
    return PartSong(
        dataset=notes.column("dataset")[0].as_py(),
        song=song,
        split=split,
        scheme=scheme.name,
        part_names=scheme.labels,
        onset=onset,
        duration=duration,
        pitch=pitch,
        label=label,
    )


def iter_extract(
    batches: Iterable[pa.RecordBatch],
    scheme_for: Callable[[str], Scheme],
    splits: Mapping[str, str] | None = None,
    keep_unisons: bool = False,
) -> Iterator[PartSong | Skip]:
    """Stream songs out of note batches; `splits` maps every song id to its split (None: left empty)."""
    for song, notes in iter_songs(batches):
        split = splits[song] if splits is not None else ""
        yield extract(notes, scheme_for(notes.column("dataset")[0].as_py()), split, keep_unisons)


def build(
    batches: Iterable[pa.RecordBatch],
    scheme_for: Callable[[str], Scheme] = default_scheme,
    seed: int = 0,
    keep_unisons: bool = False,
) -> tuple[list[PartSong], list[Skip]]:
    """All songs of the batches, split 8:1:1 by `assign_splits` over every song id seen (skipped
    ones included), so a song lands in the same split as in the other branches of the lineage."""
    results = list(iter_extract(batches, scheme_for, keep_unisons=keep_unisons))
    splits = assign_splits([r.song for r in results], seed)
    songs = [replace(r, split=splits[r.song]) for r in results if isinstance(r, PartSong)]
    return songs, [r for r in results if isinstance(r, Skip)]


def extract_rejecting(
    dataset: str, batches: Iterable[pa.RecordBatch], scheme: Scheme, splits: Mapping[str, str]
) -> tuple[list[PartSong], list[Reject]]:
    """Every song of one dataset's note batches under ``scheme``; a skipped song is a reject row."""
    songs, rejects = [], []
    for result in iter_extract(batches, lambda _: scheme, splits):
        if isinstance(result, Skip):
            rejects.append(Reject(dataset, result.song, "part_extract", "Skipped", result.reason))
        else:
            songs.append(result)
    return songs, rejects


def notes_per_part(songs: Iterable[PartSong], scheme: Scheme) -> dict[str, int]:
    """How many notes each of the scheme's parts holds over the songs (0 for a part none of them has)."""
    labels = [s.label for s in songs]
    counts = np.bincount(np.concatenate(labels), minlength=len(scheme.labels)) if labels else np.zeros(len(scheme.labels))
    return dict(zip(scheme.labels, map(int, counts)))


def songs_per_split(songs: Iterable[PartSong]) -> dict[str, int]:
    return dict(Counter(s.split for s in songs))


PART_NOTES = pa.schema(
    [
        ("dataset", pa.string()),
        ("song", pa.string()),
        ("split", pa.string()),
        ("scheme", pa.string()),
        ("part_names", pa.list_(pa.string())),
        ("n_notes", pa.int32()),
        ("onset", pa.list_(pa.int64())),
        ("duration", pa.list_(pa.int64())),
        ("pitch", pa.list_(pa.int8())),
        ("label", pa.list_(pa.int8())),
    ]
)
_ARRAYS = ("onset", "duration", "pitch", "label")


def to_table(songs: Iterable[PartSong]) -> pa.Table:
    """One row per song; the note arrays become list columns built from flat arrays and offsets."""
    songs = list(songs)
    lengths = np.array([len(s.onset) for s in songs], np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    columns: dict[str, pa.Array] = {
        "dataset": pa.array([s.dataset for s in songs], pa.string()),
        "song": pa.array([s.song for s in songs], pa.string()),
        "split": pa.array([s.split for s in songs], pa.string()),
        "scheme": pa.array([s.scheme for s in songs], pa.string()),
        "part_names": pa.array([list(s.part_names) for s in songs], pa.list_(pa.string())),
        "n_notes": pa.array(lengths.astype(np.int32)),
    }
    for name in _ARRAYS:
        value_type = PART_NOTES.field(name).type.value_type
        values = np.concatenate([getattr(s, name) for s in songs]) if songs else np.zeros(0, np.int64)
        columns[name] = pa.ListArray.from_arrays(offsets, pa.array(values.astype(value_type.to_pandas_dtype())))
    return pa.table(columns, schema=PART_NOTES)


def from_table(table: pa.Table) -> list[PartSong]:
    """Inverse of :func:`to_table`; note arrays come back as int64."""
    if table.num_rows == 0:
        return []
    table = table.combine_chunks()
    arrays = {}
    for name in _ARRAYS:
        column = table.column(name).chunk(0)
        values = column.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
        offsets = column.offsets.to_numpy()
        arrays[name] = np.split(values, offsets[1:-1] - offsets[0])
    rows = table.select(["dataset", "song", "split", "scheme", "part_names"]).to_pylist()
    return [
        PartSong(
            dataset=row["dataset"],
            song=row["song"],
            split=row["split"],
            scheme=row["scheme"],
            part_names=tuple(row["part_names"]),
            **{name: arrays[name][i] for name in _ARRAYS},
        )
        for i, row in enumerate(rows)
    ]
