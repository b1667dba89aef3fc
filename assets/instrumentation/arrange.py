"""Automatic instrumentation: a solo (keyboard) score in, a multitrack arrangement out.

The input's pitched notes are downmixed exactly as the training data was (24 steps per quarter,
one note per onset and pitch, sorted by onset then pitch), a part-separation model (or, when no
model beats it, the zone baseline) labels every note, and each part becomes a track with an
instrument that suits it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import muspy
import numpy as np
import torch

from assets.instrumentation.baselines import predict_zones, zones_of_ranges
from assets.instrumentation.part_notes import resample
from models import part_separation as ps
from models.part_separation import RESOLUTION, PartSong

PART_PROGRAMS = {
    "satb": (73, 68, 71, 70),  # a woodwind quartet: flute, oboe, clarinet, bassoon
    "string_quartet": (40, 40, 41, 42),
    "lmd": (0, 25, 33, 48, 61),
}


class InstrumentationError(ValueError):
    pass


@dataclass(frozen=True)
class Arranger:
    """What labels the downmixed notes, for which parts, and its name for the people listening."""

    label: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (onset, duration, pitch) -> part labels
    part_names: tuple[str, ...]
    scheme: str
    name: str


def model_arranger(model: torch.nn.Module, cfg: ps.PartSepConfig, part_names: Sequence[str], scheme: str, name: str) -> Arranger:
    return Arranger(lambda onset, duration, pitch: ps.predict(model, cfg, onset, duration, pitch), tuple(part_names), scheme, name)


def zone_arranger(record: dict) -> Arranger:
    """The zone baseline from part_separation_eval's baseline record (its fitted pitch ranges per part)."""
    zones = zones_of_ranges(record["zones"], record["part_names"])
    return Arranger(lambda onset, duration, pitch: predict_zones(zones, pitch), tuple(record["part_names"]),
                    record["scheme"], "the zone baseline")  # fmt: skip


def downmix(music: muspy.Music) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Onset, duration, pitch and velocity of the pitched notes, as the models were trained on."""
    notes = [(n.time, n.duration, n.pitch, n.velocity) for t in music.tracks if not t.is_drum for n in t.notes]
    if not notes:
        drums = any(t.notes for t in music.tracks)
        raise InstrumentationError("the input has only drum notes" if drums else "the input has no notes")
    arr = np.array(notes, dtype=np.int64)
    onset, duration = resample(arr[:, 0], music.resolution), resample(arr[:, 1], music.resolution)
    keep = duration > 0
    onset, duration, pitch, velocity = onset[keep], duration[keep], arr[keep, 2], arr[keep, 3]
    if not len(onset):
        raise InstrumentationError("every note of the input is shorter than a 24th of a quarter")
    order = np.lexsort((-duration, pitch, onset))
    onset, duration, pitch, velocity = onset[order], duration[order], pitch[order], velocity[order]
    first = np.ones(len(onset), bool)
    first[1:] = (onset[1:] != onset[:-1]) | (pitch[1:] != pitch[:-1])
    return onset[first], duration[first], pitch[first], velocity[first]


def part_tracks(
    onset: np.ndarray, duration: np.ndarray, pitch: np.ndarray, velocity: np.ndarray,
    labels: np.ndarray, part_names: Sequence[str], scheme: str,
) -> list[muspy.Track]:
    """One track per part, named after it and played by the scheme's instrument for it."""
    programs = PART_PROGRAMS.get(scheme, (0,) * len(part_names))
    tracks = []
    for part, name in enumerate(part_names):
        idx = np.flatnonzero(labels == part)
        notes = [muspy.Note(int(onset[i]), int(pitch[i]), int(duration[i]), int(velocity[i])) for i in idx]
        tracks.append(muspy.Track(program=programs[part % len(programs)], name=name, notes=notes))
    return tracks


def arrange(music: muspy.Music, arranger: Arranger) -> muspy.Music:
    """The input arranged for the arranger's parts, in the input's tempo."""
    onset, duration, pitch, velocity = downmix(music)
    labels = arranger.label(onset, duration, pitch)
    tempos = [muspy.Tempo(int(resample(np.array([t.time]), music.resolution)[0]), t.qpm) for t in music.tempos]
    tracks = part_tracks(onset, duration, pitch, velocity, labels, arranger.part_names, arranger.scheme)
    return muspy.Music(resolution=RESOLUTION, tempos=tempos, tracks=tracks)


def labelled_music(song: PartSong, labels: np.ndarray, qpm: float = 100.0) -> muspy.Music:
    """A part-labelled song as a multitrack Music, for listening to predictions and ground truth."""
    velocity = np.full(len(song.pitch), 80)
    tracks = part_tracks(song.onset, song.duration, song.pitch, velocity, labels, song.part_names, song.scheme)
    return muspy.Music(resolution=RESOLUTION, tempos=[muspy.Tempo(0, qpm)], tracks=tracks)
