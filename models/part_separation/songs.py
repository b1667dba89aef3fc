"""Part-labelled songs and the time resolution their notes are stored at."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESOLUTION = 24  # steps per quarter of the part-labelled notes


@dataclass(frozen=True)
class PartSong:
    """One song's notes with their part labels, the unit every part-separation model and baseline reads."""

    dataset: str
    song: str
    split: str
    scheme: str
    part_names: tuple[str, ...]  # the scheme's labels, index = label
    onset: np.ndarray  # int64, sorted by (onset, pitch), at RESOLUTION
    duration: np.ndarray
    pitch: np.ndarray
    label: np.ndarray
