"""MMT samples in the paper's three generation modes, timed, and written as MIDI, audio and piano rolls.

Conditioned modes draw their prompts from test songs, so every conditioned sample has a ground
truth to compare with; speed is measured per sample as generated notes per second of wall time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from assets.core import plots
from assets.core.synth import RenderError, render_midi
from models import mmt
from models.mmt import encoding as mmt_encoding

MODES = ("unconditioned", "instrument", "continuation")

SAMPLES = pa.schema(
    [
        ("mode", pa.string()),
        ("index", pa.int32()),
        ("prompt_song", pa.string()),
        ("model_version", pa.string()),
        ("n_events", pa.int32()),
        ("n_notes", pa.int32()),
        ("generated_notes", pa.int32()),
        ("seconds", pa.float64()),
        ("notes_per_second", pa.float64()),
        ("midi", pa.string()),
        ("audio", pa.string()),
        ("render_error", pa.string()),
        ("codes", pa.list_(pa.list_(pa.int16(), len(mmt_encoding.FIELDS)))),
    ]
)


@dataclass
class Sample:
    mode: str
    index: int
    prompt_song: str
    codes: np.ndarray
    prompt_notes: int
    seconds: float

    @property
    def n_notes(self) -> int:
        return int((self.codes[:, 0] == mmt_encoding.TYPE_NOTE).sum())

    @property
    def generated_notes(self) -> int:
        return self.n_notes - self.prompt_notes


def prompt_for(mode: str, codes: np.ndarray | None, continuation_beats: int) -> np.ndarray:
    if mode == "unconditioned":
        return mmt.unconditioned_prompt()
    if mode == "instrument":
        return mmt.instrument_prompt(codes)
    if mode == "continuation":
        return mmt.continuation_prompt(codes, continuation_beats)
    raise ValueError(f"unknown generation mode {mode!r}; choose from {', '.join(MODES)}")


def generate_samples(
    model: mmt.MMT,
    test_songs: list[str],
    test_codes: list[np.ndarray],
    modes: tuple[str, ...],
    per_mode: int,
    continuation_beats: int,
    max_len: int,
    seed: int,
) -> list[Sample]:
    """``per_mode`` samples of every mode; conditioned ones cycle through the test songs in order."""
    if any(mode != "unconditioned" for mode in modes) and not test_codes:
        raise ValueError("conditioned generation needs test songs, and the test split is empty")
    max_len = min(max_len, model.cfg.max_seq_len)
    samples = []
    for mode in modes:
        for index in range(per_mode):
            song, codes = ("", None) if mode == "unconditioned" else (test_songs[index % len(test_songs)], test_codes[index % len(test_codes)])
            prompt = prompt_for(mode, codes, continuation_beats)[: max_len - 2]
            started = time.perf_counter()
            out = mmt.generate(model, prompt, max_len, seed=seed + index)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            prompt_notes = int((prompt[:, 0] == mmt_encoding.TYPE_NOTE).sum())
            samples.append(Sample(mode, index, song, out, prompt_notes, seconds))
    return samples


def write_sample(sample: Sample, out_dir: Path, soundfont: str | None) -> dict:
    """MIDI, WAV (when a SoundFont is there) and piano-roll PNG of one sample; returns its table row."""
    stem = out_dir / sample.mode / f"{sample.mode}-{sample.index:03d}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    midi = mmt_encoding.write_midi(sample.codes, stem.with_suffix(".mid"))
    music = mmt_encoding.decode(sample.codes)
    stem.with_suffix(".png").write_bytes(plots.pianoroll_png(music, f"MMT {sample.mode} sample {sample.index}", max_beats=64))
    audio, error = "", ""
    if soundfont is None:
        error = "no SoundFont installed"
    elif sample.n_notes == 0:
        error = "sample has no notes"
    else:
        try:
            render_midi(midi, stem.with_suffix(".wav"), soundfont)
            audio = str(stem.with_suffix(".wav"))
        except RenderError as exc:
            error = str(exc)
    return {
        "mode": sample.mode,
        "index": sample.index,
        "prompt_song": sample.prompt_song,
        "n_events": len(sample.codes),
        "n_notes": sample.n_notes,
        "generated_notes": sample.generated_notes,
        "seconds": sample.seconds,
        "notes_per_second": sample.generated_notes / sample.seconds if sample.seconds > 0 else 0.0,
        "midi": str(midi),
        "audio": audio,
        "render_error": error,
        "codes": sample.codes.tolist(),
    }


def samples_table(samples: list[Sample], out_dir: Path, soundfont: str | None, model_version: str) -> pa.Table:
    """Every sample written out (``write_sample``) as one ``SAMPLES`` table of the model version that made them."""
    rows = [write_sample(s, out_dir, soundfont) | {"model_version": model_version} for s in samples]
    return pa.Table.from_pylist(rows, schema=SAMPLES)


def piano_rolls(table: pa.Table) -> list[tuple[str, bytes]]:
    """The piano roll written beside the first sample of each mode, named "<mode> 0"."""
    firsts = table.filter(pc.field("index") == 0).select(["mode", "index", "midi"]).to_pylist()
    return [(f"{r['mode']} {r['index']}", Path(r["midi"]).with_suffix(".png").read_bytes()) for r in firsts]
