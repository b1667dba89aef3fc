"""Synthetic instrument videos: offline demo data for the CLIPSep text/image-queried separation branch.

CLIPSep learns to separate the sound of whatever is visible, so its training data are solo videos
whose picture names the instrument that plays. Here each video is a FluidSynth rendering of a
monophonic music21 corpus melody (a chorale soprano or a fiddle tune, moved into the instrument's
range) under frames showing the instrument's name and a drawn icon on its own colour. The camera
zooms, pans, rotates and flickers a little, differently in every video, so that a model cannot
match videos by exact pixels. Everything is a function of (instrument, seed): the same call gives
the same frames, the same audio and, with bit-exact muxing, the same mp4 bytes.
"""

from __future__ import annotations

import csv
import os
import subprocess
import tempfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from assets.core.tools import require_tools, soundfont_path
from assets.violin.humanize import Score, corpus_score, excerpt
from assets.violin.render import render

SIZE = (320, 240)  # width, height
FPS = 8
SAMPLE_RATE = 16_000
MANIFEST_COLUMNS = ("id", "url", "path", "start", "duration", "label")

INSTRUMENTS: dict[str, int] = {
    "violin": 40, "cello": 42, "acoustic guitar": 24, "piano": 0,
    "flute": 73, "clarinet": 71, "trumpet": 56, "xylophone": 13,
}
# Comfortable written range (MIDI pitches) each melody is moved into by whole octaves.
RANGES: dict[str, tuple[int, int]] = {
    "violin": (60, 88), "cello": (36, 64), "acoustic guitar": (45, 72), "piano": (48, 84),
    "flute": (64, 93), "clarinet": (52, 79), "trumpet": (55, 79), "xylophone": (65, 96),
}
# Monophonic lines of the music21 corpus (path, tune number of an ABC collection, qpm).
MELODIES: tuple[tuple[str, int | None, float], ...] = (
    ("bach/bwv66.6", None, 96.0),
    ("bach/bwv269", None, 100.0),
    ("bach/bwv347", None, 92.0),
    ("bach/bwv153.1", None, 96.0),
    ("bach/bwv86.6", None, 100.0),
    ("bach/bwv267", None, 104.0),
    ("oneills1850/0001-0050.abc", 1, 104.0),
    ("oneills1850/0001-0050.abc", 12, 108.0),
    ("oneills1850/0051-0100.abc", 60, 100.0),
    ("oneills1850/0101-0200.abc", 150, 112.0),
)

Shape = tuple[str, str, tuple[float, ...]]  # kind (ellipse, rect, polygon, line), colour role, unit coordinates


@dataclass(frozen=True)
class Look:
    """How an instrument appears on screen: icon primitives in a unit square and three colours."""

    background: tuple[int, int, int]
    foreground: tuple[int, int, int]
    accent: tuple[int, int, int]
    shapes: tuple[Shape, ...]


def _bowed(scale: float) -> tuple[Shape, ...]:
    """Violin-family body: two bouts, a neck, strings; the cello's is wider and stands on a spike."""
    w = 0.2 * scale
    return (
        ("ellipse", "fg", (0.5 - 1.1 * w, 0.5, 0.5 + 1.1 * w, 0.92)),
        ("ellipse", "fg", (0.5 - 0.9 * w, 0.24, 0.5 + 0.9 * w, 0.6)),
        ("rect", "accent", (0.47, 0.02, 0.53, 0.4)),
        ("rect", "accent", (0.44, 0.72, 0.56, 0.76)),
        *(("line", "bg", (x, 0.05, x, 0.85, 0.006)) for x in (0.48, 0.493, 0.507, 0.52)),
    )


_KEYS = tuple(("rect", "fg", (0.05 + 0.09 * i, 0.3, 0.135 + 0.09 * i, 0.75)) for i in range(10))
_BLACK_KEYS = tuple(("rect", "accent", (0.115 + 0.09 * i, 0.3, 0.16 + 0.09 * i, 0.55)) for i in (0, 1, 3, 4, 5, 7, 8))

LOOKS: dict[str, Look] = {
    "violin": Look((170, 35, 40), (240, 200, 150), (60, 25, 15), _bowed(1.0)),
    "cello": Look((105, 55, 165), (225, 160, 90), (40, 20, 40), _bowed(1.5) + (("rect", "accent", (0.49, 0.9, 0.51, 1.0)),)),
    "acoustic guitar": Look((40, 140, 60), (235, 195, 120), (70, 40, 20), (
        ("ellipse", "fg", (0.22, 0.5, 0.78, 0.98)),
        ("ellipse", "fg", (0.28, 0.3, 0.72, 0.7)),
        ("ellipse", "accent", (0.42, 0.5, 0.58, 0.66)),
        ("rect", "accent", (0.46, 0.02, 0.54, 0.45)),
        ("rect", "accent", (0.4, 0.84, 0.6, 0.88)),
    )),
    "piano": Look((35, 35, 45), (245, 245, 240), (15, 15, 15), _KEYS + _BLACK_KEYS),
    "flute": Look((70, 150, 225), (215, 220, 230), (60, 60, 70), (
        ("rect", "fg", (0.02, 0.46, 0.98, 0.54)),
        ("ellipse", "accent", (0.12, 0.42, 0.2, 0.48)),
        *(("ellipse", "accent", (x, 0.48, x + 0.04, 0.52)) for x in (0.4, 0.48, 0.56, 0.68, 0.76, 0.84)),
    )),
    "clarinet": Look((25, 130, 135), (30, 30, 30), (200, 200, 210), (
        ("rect", "fg", (0.45, 0.1, 0.55, 0.8)),
        ("polygon", "fg", (0.45, 0.78, 0.55, 0.78, 0.64, 0.97, 0.36, 0.97)),
        ("polygon", "accent", (0.46, 0.1, 0.54, 0.1, 0.52, 0.02, 0.48, 0.02)),
        *(("ellipse", "accent", (0.485, y, 0.515, y + 0.03)) for y in (0.3, 0.38, 0.46, 0.56, 0.64)),
    )),
    "trumpet": Look((235, 195, 40), (190, 120, 20), (90, 50, 10), (
        ("rect", "fg", (0.08, 0.47, 0.72, 0.54)),
        ("polygon", "fg", (0.7, 0.47, 0.96, 0.28, 0.96, 0.72, 0.7, 0.54)),
        ("rect", "fg", (0.25, 0.54, 0.62, 0.66)),
        *(("rect", "accent", (x, 0.3, x + 0.05, 0.47)) for x in (0.32, 0.41, 0.5)),
        ("rect", "accent", (0.02, 0.48, 0.08, 0.53)),
    )),
    "xylophone": Look((245, 125, 30), (250, 235, 200), (120, 40, 110), (
        *(("rect", "fg" if i % 2 else "accent", (0.06 + 0.13 * i, 0.22 + 0.04 * i, 0.16 + 0.13 * i, 0.86 - 0.04 * i))
          for i in range(7)),
        ("line", "accent", (0.3, 0.05, 0.5, 0.3, 0.02)),
        ("line", "accent", (0.75, 0.05, 0.6, 0.3, 0.02)),
    )),
}


def _rng(instrument: str, seed: int, stream: int) -> np.random.Generator:
    """Independent generators for the audio and the picture of one (instrument, seed)."""
    return np.random.default_rng([seed, zlib.crc32(instrument.encode()), stream])


@lru_cache(maxsize=None)
def _melody(index: int) -> Score:
    path, number, qpm = MELODIES[index]
    return corpus_score(path, number, qpm)


def melody_notes(instrument: str, seed: int, seconds: float) -> tuple[np.ndarray, float]:
    """A seeded excerpt of a corpus melody lasting ``seconds``, in the instrument's range: (notes, qpm).

    The melody is looped when shorter than twice the excerpt, so any start beat has enough notes
    after it; excerpts start on a beat with a note so that no video opens with a rest.
    """
    rng = _rng(instrument, seed, 0)
    score = _melody(int(rng.integers(len(MELODIES))))
    qpm = score.qpm * rng.uniform(0.9, 1.1)
    n_beats = seconds * qpm / 60.0
    length = int(score.notes[:, 1].max())
    loops = max(1, int(np.ceil(2 * n_beats * score.resolution / length)))
    notes = np.concatenate([score.notes + [k * length, k * length, 0, 0] for k in range(loops)])
    latest = loops * length - n_beats * score.resolution
    starts = notes[(notes[:, 0] % score.resolution == 0) & (notes[:, 0] <= latest), 0]
    start = int(rng.choice(starts)) if len(starts) else 0
    cut = excerpt(Score(score.name, notes, qpm, score.resolution), start / score.resolution, n_beats).notes

    low, high = RANGES[instrument]
    cut[:, 2] += 12 * round(((low + high) / 2 - np.median(cut[:, 2])) / 12)
    cut[:, 2] += 12 * np.ceil((low - cut[:, 2]) / 12).clip(0).astype(np.int64)
    cut[:, 2] -= 12 * np.ceil((cut[:, 2] - high) / 12).clip(0).astype(np.int64)
    return cut, qpm


def render_audio(instrument: str, seed: int, seconds: float, soundfont: str | Path,
                 sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The instrument playing its excerpt: exactly ``seconds`` of mono float32, peak 0.7, faded out."""
    notes, qpm = melody_notes(instrument, seed, seconds)
    with tempfile.TemporaryDirectory(prefix="synthetic-") as tmp:
        played = render(notes, qpm, soundfont, Path(tmp) / "solo.wav", INSTRUMENTS[instrument], sample_rate)
    audio = np.zeros(round(seconds * sample_rate), dtype=np.float32)
    audio[: len(played)] = played[: len(audio)]
    fade = min(len(audio), sample_rate // 4)
    audio[len(audio) - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    peak = float(np.abs(audio).max())
    return audio * (0.7 / peak) if peak > 0 else audio


def _still(instrument: str, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """The scene before the camera: a shaded background, the icon and the name, placed per video."""
    look, (width, height) = LOOKS[instrument], size
    background = np.clip(np.array(look.background) + rng.integers(-12, 13, 3), 0, 255)
    shade = 1.0 + rng.uniform(0.1, 0.25) * np.linspace(-1.0, 1.0, height)[:, None, None] * rng.choice([-1, 1])
    pixels = np.broadcast_to(background * shade, (height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)

    side = height * rng.uniform(0.52, 0.64)
    left = width / 2 - side / 2 + rng.uniform(-0.08, 0.08) * width
    top = height * rng.uniform(0.05, 0.1)
    colours = {"bg": tuple(int(c) for c in background), "fg": look.foreground, "accent": look.accent}
    for kind, role, coords in look.shapes:
        points = [(left + x * side, top + y * side) for x, y in zip(coords[0::2], coords[1::2])]
        if kind == "ellipse":
            draw.ellipse(points, fill=colours[role])
        elif kind == "rect":
            draw.rectangle(points, fill=colours[role])
        elif kind == "polygon":
            draw.polygon(points, fill=colours[role])
        else:
            draw.line(points, fill=colours[role], width=max(1, round(coords[4] * side)))

    font = ImageFont.load_default(size=max(12, height // 9))
    x, y = width / 2 + rng.uniform(-0.05, 0.05) * width, height * 0.85
    draw.text((x + 2, y + 2), instrument, font=font, fill=(0, 0, 0), anchor="mm")
    draw.text((x, y), instrument, font=font, fill=(255, 255, 255), anchor="mm")
    return image


def _drift(rng: np.random.Generator, t: np.ndarray, amplitude: float, shake: float) -> np.ndarray:
    """Slow handheld drift (two random sinusoids) plus frame-to-frame shake."""
    frequency, phase = rng.uniform(0.05, 0.4, 2), rng.uniform(0, 2 * np.pi, 2)
    slow = np.sin(2 * np.pi * frequency[:, None] * t + phase[:, None]).mean(axis=0)
    return amplitude * slow + shake * rng.standard_normal(len(t))


def render_frames(instrument: str, seed: int, seconds: float, fps: int = FPS,
                  size: tuple[int, int] = SIZE) -> np.ndarray:
    """Frames (n, height, width, 3) uint8 of the instrument's scene filmed by an unsteady camera."""
    rng = _rng(instrument, seed, 1)
    still = _still(instrument, rng, size)
    width, height = size
    t = np.arange(round(seconds * fps)) / fps
    zoom = 1.08 + _drift(rng, t, 0.05, 0.004)
    angle = np.radians(_drift(rng, t, 2.5, 0.3))
    pan_x, pan_y = _drift(rng, t, 0.03 * width, 0.6), _drift(rng, t, 0.03 * height, 0.6)
    gain = 1.0 + _drift(rng, t, 0.06, 0.015)

    fill = tuple(int(c) for c in np.asarray(still)[0, 0])
    cx, cy = width / 2, height / 2
    frames = np.empty((len(t), height, width, 3), dtype=np.uint8)
    for i in range(len(t)):
        # output pixel -> scene pixel: rotate and shrink about the centre, then pan
        a, b = np.cos(angle[i]) / zoom[i], np.sin(angle[i]) / zoom[i]
        coefficients = (a, b, cx + pan_x[i] - a * cx - b * cy, -b, a, cy + pan_y[i] + b * cx - a * cy)
        frames[i] = np.asarray(still.transform(size, Image.Transform.AFFINE, coefficients,
                                               Image.Resampling.BILINEAR, fillcolor=fill))
    noise = rng.standard_normal(frames.shape, dtype=np.float32) * 4.0
    return np.clip(frames * gain[:, None, None, None].astype(np.float32) + noise, 0, 255).astype(np.uint8)


def make_video(instrument: str, seed: int, out_path: str | Path, seconds: float = 10.0,
               soundfont: str | Path | None = None, timeout: float = 120.0) -> Path:
    """Write an mp4 (H.264 + AAC) of ``instrument`` playing; bit-exact flags keep the bytes seeded."""
    if instrument not in INSTRUMENTS:
        raise ValueError(f"unknown instrument {instrument!r}; choose from {', '.join(INSTRUMENTS)}")
    if soundfont is None:
        require_tools()
        soundfont = soundfont_path()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    frames = render_frames(instrument, seed, seconds)
    audio = render_audio(instrument, seed, seconds, soundfont)
    with tempfile.TemporaryDirectory(prefix="synthetic-", dir=out_path.parent) as tmp:
        wav, partial = Path(tmp) / "audio.wav", Path(tmp) / out_path.name
        sf.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
        command = [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{SIZE[0]}x{SIZE[1]}", "-framerate", str(FPS), "-i", "pipe:0",
            "-i", str(wav), "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k", "-t", f"{seconds:.3f}",
            "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
            "-movflags", "+faststart", str(partial),
        ]
        try:
            done = subprocess.run(command, input=frames.tobytes(), capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"ffmpeg took longer than {timeout:.0f} s to encode {out_path}") from exc
        if done.returncode != 0:
            raise RuntimeError(f"ffmpeg could not encode {out_path}: {done.stderr.decode(errors='replace')[-300:]}")
        os.replace(partial, out_path)
    return out_path


def video_seed(dataset_seed: int, index: int) -> int:
    """The seed of the ``index``-th video of each instrument in a dataset, so one video can be remade alone."""
    return int(np.random.SeedSequence([dataset_seed, index]).generate_state(1)[0])


def make_dataset(out_dir: str | Path, per_instrument: int, seed: int = 0, instruments: Sequence[str] | None = None,
                 progress: bool = False, seconds: float = 10.0, workers: int | None = None) -> list[dict]:
    """Write ``per_instrument`` videos of each instrument and ``manifest.csv`` (id,url,path,start,duration,label).

    Paths are file names relative to the manifest's folder, as the manifest reader resolves them, so
    the folder can be moved or served as a whole. Encoding runs in threads: the work is FluidSynth
    and ffmpeg subprocesses, which do not hold the GIL.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    require_tools()
    soundfont = soundfont_path()
    jobs = [(name, i) for name in (instruments or INSTRUMENTS) for i in range(per_instrument)]
    for name, _ in jobs:
        if name not in INSTRUMENTS:
            raise ValueError(f"unknown instrument {name!r}; choose from {', '.join(INSTRUMENTS)}")

    def one(job: tuple[str, int]) -> dict:
        name, i = job
        video_id = f"{name.replace(' ', '_')}-{i:03d}"
        path = make_video(name, video_seed(seed, i), out_dir / f"{video_id}.mp4", seconds, soundfont)
        return {"id": video_id, "url": "", "path": path.name, "start": 0.0, "duration": seconds,
                "label": name}

    for index in range(len(MELODIES)):  # parsed before the threads start, so no piece is parsed twice at once
        _melody(index)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        rows = list(tqdm(pool.map(one, jobs), total=len(jobs), desc="synthetic videos", disable=not progress))
    with open(out_dir / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows
