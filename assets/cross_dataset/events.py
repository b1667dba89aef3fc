"""MusPy event representation of note tables.

The representation is MusPy's own (note-on, note-off, time-shift, end-of-sequence; no velocity)
at 4 steps per quarter, as in the MusPy cross-dataset experiment, so vocabulary and sequence
lengths match the paper.
"""

from __future__ import annotations

import muspy
import numpy as np
import pyarrow as pa

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
