"""MusPy event representation of note tables.

The representation is MusPy's own (note-on, note-off, time-shift, end-of-sequence; no velocity)
at 4 steps per quarter, as in the MusPy cross-dataset experiment, so vocabulary and sequence
lengths match the paper.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import muspy
import numpy as np
import pyarrow as pa

from storage import shards

STEPS_PER_QUARTER = 4
MAX_TIME_SHIFT = 100
VELOCITY_BINS = 32
# MusPy keeps the velocity codes reserved even when velocity is not encoded, so EOS is code 388.
VOCAB_SIZE = 128 + 128 + MAX_TIME_SHIFT + VELOCITY_BINS + 1


def music_from_notes(notes: pa.Table) -> muspy.Music:
    """Rebuild a MusPy Music from one song's note rows (one track per `track` value)."""
    cols = notes.select(["track", "program", "is_drum", "onset", "duration", "pitch", "velocity"]).to_pydict()
    resolution = int(notes.column("resolution")[0].as_py())
    tracks: dict[int, muspy.Track] = {}
    for track, program, is_drum, onset, duration, pitch, velocity in zip(*cols.values()):
        if track not in tracks:
            tracks[track] = muspy.Track(program=program, is_drum=is_drum)
        tracks[track].notes.append(muspy.Note(time=onset, pitch=pitch, duration=duration, velocity=velocity))
    return muspy.Music(resolution=resolution, tracks=[tracks[k] for k in sorted(tracks)])


def encode(notes: pa.Table) -> np.ndarray:
    """Event codes of one song at 4 steps per quarter, ending with the end-of-sequence token."""
    music = music_from_notes(notes)
    music.adjust_resolution(STEPS_PER_QUARTER)
    codes = muspy.to_event_representation(
        music,
        use_end_of_sequence_event=True,
        encode_velocity=False,
        max_time_shift=MAX_TIME_SHIFT,
        velocity_bins=VELOCITY_BINS,
        dtype=np.int16,
    )
    return codes.reshape(-1)


def write_sequences(
    dataset: str, songs: Iterable[tuple[str, pa.Table]], splits: dict[str, str], writer: shards.ShardWriter
) -> list[int]:
    """Stream one `event_sequences` row per song into ``writer``; the songs' event counts come back."""
    lengths = []
    for song, notes in songs:
        codes = encode(notes)
        lengths.append(len(codes))
        writer.write([{"dataset": dataset, "song": song, "split": splits[song], "n_events": len(codes), "events": codes.tolist()}])
    return lengths


def summary(lengths: list[int], splits: dict[str, str]) -> dict:
    """Mean events per song and songs per split, as the UI shows them."""
    return {"mean_events": float(np.mean(lengths)) if lengths else 0.0, "splits": dict(Counter(splits.values()))}
