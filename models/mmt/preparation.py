"""Which songs become training data: the published data preparation's rules, per profile.

The published code keeps a song only when it has at least 50 encodable notes once duplicates
are gone, and when it ends between 10 and 2,000 four-beat bars in (its end time over all tracks,
drums included). A smaller corpus for a smoke run keeps every song that encodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.mmt.encoding import RESOLUTION


@dataclass(frozen=True)
class Preparation:
    min_notes: int = 50
    min_beats: int = 40
    max_beats: int | None = 8_000


PREPARATIONS = {"paper": Preparation(), "smoke": Preparation(min_notes=1, min_beats=0, max_beats=None)}


class SongDropped(ValueError):
    """A song that encodes but that the data preparation leaves out, with the rule it breaks."""


def end_beats(onset: np.ndarray, duration: np.ndarray, resolution: int) -> float:
    """Where the song's last note (of any track) ends, in beats, rounded to RESOLUTION steps as the
    published conversion rounds it."""
    end = np.asarray(onset, dtype=np.int64) + np.asarray(duration, dtype=np.int64)
    return float(np.round(end.max() * RESOLUTION / resolution)) / RESOLUTION if len(end) else 0.0


def check_song(n_notes: int, beats: float, rules: Preparation) -> None:
    """Raise ``SongDropped`` when a song of ``n_notes`` encodable notes ending at ``beats`` breaks a rule."""
    if n_notes < rules.min_notes:
        raise SongDropped(f"{n_notes} encodable notes, fewer than the {rules.min_notes} the data preparation keeps")
    if beats < rules.min_beats:
        raise SongDropped(f"ends at beat {beats:g}, before the {rules.min_beats} beats the data preparation keeps")
    if rules.max_beats is not None and beats > rules.max_beats:
        raise SongDropped(f"ends at beat {beats:g}, past the {rules.max_beats} beats the data preparation keeps")
