"""Arrangements written out for listening: per input, the arranged MIDI, its piano roll and, with a
SoundFont, its audio; an input the model cannot arrange becomes a row with the reason."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import muspy
import pandas as pd
from assets.core import plots
from assets.core.synth import RenderError, render_midi
from assets.instrumentation.arrange import Arranger, InstrumentationError, arrange, labelled_music
from models.part_separation import PartSong

COLUMNS = ["input", "midi", "audio", "notes", "error"]


def read_inputs(paths: Sequence[str]) -> list[tuple[str, muspy.Music]]:
    """Score files (MIDI, MusicXML, ...) by file stem."""
    return [(Path(p).stem, muspy.read(p)) for p in paths]


def example_inputs(songs: Sequence[PartSong], count: int) -> list[tuple[str, muspy.Music]]:
    """The first ``count`` test songs as their ground-truth arrangement, whose downmix is the input."""
    return [(s.song, labelled_music(s, s.label)) for s in songs[:count]]


def write_arrangements(
    inputs: Sequence[tuple[str, muspy.Music]], arranger: Arranger, out_dir: Path, soundfont: str | None
) -> tuple[pd.DataFrame, list[tuple[str, bytes]]]:
    """One ``COLUMNS`` row per input and the piano roll of each arranged one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, rolls = [], []
    for name, music in inputs:
        row = {"input": name, "midi": "", "audio": "", "notes": 0, "error": ""}
        try:
            arranged = arrange(music, arranger)
        except InstrumentationError as exc:
            rows.append(row | {"error": str(exc)})
            continue
        stem = out_dir / re.sub(r"[^\w.-]+", "_", name)  # song names are dataset paths such as bach/bwv11.6.mxl
        midi = stem.with_name(stem.name + ".mid")
        muspy.write_midi(midi, arranged)
        png = plots.pianoroll_png(arranged, f"{name} arranged", max_beats=32)
        stem.with_name(stem.name + ".png").write_bytes(png)
        rolls.append((name, png))
        row |= {"midi": str(midi), "notes": sum(len(t.notes) for t in arranged.tracks)}
        if soundfont is not None:
            try:
                wav = stem.with_name(stem.name + ".wav")
                render_midi(midi, wav, soundfont)
                row["audio"] = str(wav)
            except RenderError as exc:
                row["error"] = str(exc)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS), rolls
