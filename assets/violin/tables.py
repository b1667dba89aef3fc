"""The shard schemas of the violin lineage and the rows that fill them, one recording at a time.

Audio travels as float32 mono sample bytes and notes as the score's tick columns, so every stage
reads back exactly what the one before it wrote.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.violin import scores
from assets.violin.manifests import Published
from assets.violin.sources import SAMPLE_RATE, Recording

RECORDING_ROWS = pa.schema(
    [
        ("id", pa.string()), ("url", pa.string()), ("path", pa.string()), ("start", pa.float64()),
        ("end", pa.float64()), ("performer", pa.string()), ("work", pa.string()), ("movement", pa.int64()),
        ("title", pa.string()), ("score", pa.string()), ("score_path", pa.string()), ("repeat1", pa.bool_()),
        ("repeat2", pa.bool_()), ("baroque_tuning", pa.bool_()), ("collection", pa.string()),
        ("source_filename", pa.string()), ("license", pa.string()),
        ("published_alignment", pa.string()),  # the dataset's own alignment CSV, when the manifest ships one
        ("published_searched", pa.list_(pa.string())),  # where it was looked for, nearest first
        ("manifest", pa.string()),  # the `manifest` config that added the row
    ]
)  # fmt: skip
AUDIO = pa.schema(
    [
        ("id", pa.string()), ("performer", pa.string()), ("work", pa.string()), ("movement", pa.int64()),
        ("attribution", pa.string()), ("seconds", pa.float64()), ("sample_rate", pa.int32()),
        ("audio", pa.binary()),  # float32 mono samples
    ]
)  # fmt: skip
NOTES = pa.schema([("recording", pa.string()), *((c, pa.int64()) for c in scores.NOTE_COLUMNS)])
RENDERS = pa.schema(
    [
        ("id", pa.string()), ("qpm", pa.float64()), ("transpose", pa.int32()), ("soundfont", pa.string()),
        ("sample_rate", pa.int32()), ("audio", pa.binary()),  # float32 mono samples
    ]
)  # fmt: skip
ALIGNED = pa.schema(
    [
        ("recording", pa.string()), ("method", pa.string()), *((c, pa.int64()) for c in scores.NOTE_COLUMNS),
        ("start", pa.float64()), ("end", pa.float64()),  # seconds into the recording slice
        ("confidence", pa.float64()),  # confidence.note_confidence: 0 (no match) to 1
    ]
)  # fmt: skip


def recordings_table(found: list[Recording], published: dict[str, Published], manifest: str) -> pa.Table:
    """The manifest's rows, each with its published alignment lookup (by recording id) and its manifest."""
    rows = [
        asdict(r) | {"published_alignment": published[r.id].path, "published_searched": list(published[r.id].searched)}
        | {"manifest": manifest}
        for r in found
    ]
    return pa.Table.from_pylist(rows, schema=RECORDING_ROWS)


def merge_recordings(kept: pa.Table | None, new: pa.Table) -> pa.Table:
    """Every recording read so far: a re-read manifest replaces its own rows and keeps the others', by id."""
    if kept is not None:
        kept = kept.filter(pc.invert(pc.is_in(kept.column("id"), new.column("id"))))
        # rows kept from before a column was added get it as nulls
        new = pa.concat_tables([kept, new], promote_options="default").select(new.schema.names)
    return new.sort_by("id")


def recording_from_row(row: dict) -> tuple[Recording, Published]:
    """A `recordings` row back as the manifest's Recording and its published alignment lookup."""
    row = dict(row)
    published = Published(row.pop("published_alignment"), tuple(row.pop("published_searched") or ()))
    row.pop("manifest")
    return Recording(**row), published


def audio_table(recording: Recording, audio: np.ndarray) -> pa.Table:
    row = {
        "id": recording.id, "performer": recording.performer, "work": recording.work, "movement": recording.movement,
        "attribution": recording.attribution, "seconds": recording.seconds, "sample_rate": SAMPLE_RATE,
        "audio": np.asarray(audio, dtype=np.float32).tobytes(),
    }  # fmt: skip
    return pa.Table.from_pylist([row], schema=AUDIO)


def notes_table(recording_id: str, notes: np.ndarray) -> pa.Table:
    """(n, 4) score notes (onset, offset, pitch, velocity in ticks) as rows of ``NOTES``."""
    return pa.table({"recording": [recording_id] * len(notes), **dict(zip(scores.NOTE_COLUMNS, notes.T))}, schema=NOTES)


def render_table(recording_id: str, qpm: float, transpose: int, soundfont: str, audio: np.ndarray) -> pa.Table:
    row = {
        "id": recording_id, "qpm": qpm, "transpose": transpose, "soundfont": soundfont, "sample_rate": SAMPLE_RATE,
        "audio": np.asarray(audio, dtype=np.float32).tobytes(),
    }  # fmt: skip
    return pa.Table.from_pylist([row], schema=RENDERS)


def aligned_table(recording_id: str, method: str, notes: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                  confidence: np.ndarray) -> pa.Table:
    columns = {
        "recording": [recording_id] * len(notes), "method": [method] * len(notes),
        **dict(zip(scores.NOTE_COLUMNS, notes.T)), "start": starts, "end": ends, "confidence": confidence,
    }  # fmt: skip
    return pa.table(columns, schema=ALIGNED)


def samples(table: pa.Table) -> np.ndarray:
    """The first row's audio (a one-recording `recording_audio` or `score_renders` partition)."""
    return np.frombuffer(table.column("audio")[0].as_py(), dtype=np.float32)


def note_array(table: pa.Table) -> np.ndarray:
    """The (n, 4) int64 tick notes of a ``NOTES`` or ``ALIGNED`` table."""
    return np.column_stack([table.column(c).to_numpy() for c in scores.NOTE_COLUMNS]).astype(np.int64)
