"""Per-note model inputs of one sequence (a training crop, an evaluation window or a whole song).

Input features of note i of a sequence whose first onset lies in beat b0, so
``origin = b0 * RESOLUTION`` (crops are shift-invariant in beats while positions inside the beat
keep their metrical meaning):

- ``pitch``: MIDI pitch + 1 (0 is padding), a learned 16-d embedding shared with the pitch hints.
- ``frequency``: 440 * 2 ** ((pitch - 69) / 12) divided by that of pitch 127, a scalar in (0, 1].
- ``duration``: in steps, clipped to ``MAX_DURATION`` (8 beats), a learned 16-d embedding.
- ``time``: (onset - origin) in beats divided by ``TIME_SCALE``, a scalar.
- ``beat``: whole beats since the origin, a fixed sinusoidal 16-d encoding (any length works).
- ``position``: onset step within the beat (0..23), a learned 16-d embedding.
- ``entry``: per part a one-hot of (before, at, after) the part's first note, i.e. the part's
  first note is marked with its label and every other note says whether that part has entered;
  all zeros when entry hints are unknown.
- ``pitch_hint``: per part its mean pitch + 1 (0 for a part without notes) through the pitch
  embedding, the same for every note of the sequence.
"""

from __future__ import annotations

import numpy as np

from models.part_separation.hints import Hints
from models.part_separation.songs import RESOLUTION

MAX_DURATION = 8 * RESOLUTION
TIME_SCALE = 64.0  # beats; keeps the time scalar near the unit range over a crop


def features(
    onset: np.ndarray, duration: np.ndarray, pitch: np.ndarray, hints: Hints | None, n_parts: int
) -> dict[str, np.ndarray]:
    """Model inputs of one sequence (see the module docstring); per-note arrays have length n."""
    onset = np.asarray(onset, dtype=np.int64)
    pitch = np.asarray(pitch, dtype=np.int64)
    n = len(onset)
    origin = (int(onset.min()) // RESOLUTION) * RESOLUTION if n else 0
    relative = onset - origin
    entry = np.zeros((n, n_parts, 3), dtype=np.float32)
    if hints is not None and hints.entry is not None:
        state = np.sign(np.arange(n)[:, None] - hints.entry[None, :]) + 1  # 0 before, 1 at, 2 after
        np.put_along_axis(entry, state[..., None], 1.0, axis=-1)
    pitch_hint = np.zeros(n_parts, dtype=np.int64)
    if hints is not None and hints.pitch is not None:
        known = ~np.isnan(hints.pitch)
        pitch_hint[known] = np.clip(np.rint(hints.pitch[known]), 0, 127).astype(np.int64) + 1
    return {
        "pitch": pitch + 1,
        "frequency": (2.0 ** ((pitch - 127) / 12)).astype(np.float32),
        "duration": np.clip(np.asarray(duration, dtype=np.int64), 0, MAX_DURATION),
        "time": (relative / (RESOLUTION * TIME_SCALE)).astype(np.float32),
        "beat": relative // RESOLUTION,
        "position": relative % RESOLUTION,
        "entry": entry.reshape(n, n_parts * 3),
        "pitch_hint": pitch_hint,
    }
