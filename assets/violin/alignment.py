"""Score-to-audio alignment: where each score note starts and ends in a recording.

Both methods align the recording with a rendering of the score played at the single tempo that
makes it last as long as the recording (``render_score``), then read every note's start and end
off the warping path.

``align_v1`` is the method behind the Bach Violin Dataset's published alignments (Dong et al.,
ICASSP 2022): constant-Q spectrograms in dB at 32 ms hops and a full dynamic time warping, whose
memory grows with the product of the two lengths. A note starts at the first path point past its
onset in the rendering, so its start is quantized to 32 ms and late by half a hop on average.

``align_v2`` keeps the thesis's constant-Q spectrogram but takes it every 16 ms and warps by
multiscale DTW: a full DTW on a coarse copy of the features, then banded DTW around the projected
path at each finer scale, so memory grows linearly with length. Both signals get the same stretch
of silence at either end, so a performer's lead-in aligns with silence instead of stretching the
first note, and note times are interpolated between path points instead of rounded up.

v2 compares spectral shapes, not levels. In dB relative to its maximum, a recording's room noise
sits 15-30 dB above the rendering's digital silence in every bin, and a soft final chord 15 dB
below the rendering's full-velocity one; summed over 180 bins, such level differences outweigh the
pitches. A noisy lead-in then matched the rendering's first note instead of its silence, and a soft
chord held through a ritardando matched the softer note before it in the rendering. The path
stayed on one rendering frame for seconds, and a note read off the middle of that run, or the
first point past it, was seconds off. ``spectral_shape`` keeps what lies above the recording's
noise floor and scales every frame to unit length: noise and silence become near-empty frames
alike, and a chord matches itself at any loudness.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import librosa
import matplotlib.collections
import numba
import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from assets.core.plots import plt, to_png
from assets.violin.render import check_length, render, tempo_for
from assets.violin.scores import RESOLUTION
from assets.violin.sources import SAMPLE_RATE

# constant-Q spectrogram of the thesis: 5 octaves from C3, 3 bins per semitone
LOWEST_PITCH = 48  # C3
BINS_PER_SEMITONE = 3
CQT_BINS = 5 * 12 * BINS_PER_SEMITONE
V1_HOP = 512  # 32 ms at 16 kHz
V2_HOP = 256  # 16 ms at 16 kHz
PAD_FRAMES = 32  # 0.5 s of silence around each signal in v2
NOISE_QUANTILE = 0.1  # the quietest tenth of a recording's frames shows its noise floor
NOISE_MARGIN_DB = 6.0  # how far above that floor a bin must rise to count as sound
SOUND_SHARE = 0.5  # of a recording's median rise above its floor, the least a note frame rises
MULTISCALE_FACTOR = 4
COARSEST_FRAMES = 500  # the one full DTW runs on at most this many frames per side
BAND_RADIUS = 8  # frames added on each side of the projected path at every finer scale
FINE_RESOLUTION = 960  # MIDI ticks per quarter of a rendering to align against


def render_score(notes: np.ndarray, qpm: float, soundfont: str | Path, out_wav: str | Path,
                 resolution: int = RESOLUTION, **options) -> np.ndarray:
    """``render.render`` with every tick subdivided to ``FINE_RESOLUTION`` per quarter, so that notes
    sound when the score says they do.

    FluidSynth's MIDI player sends an event once the rounded tick count reaches it, half a tick
    early: 7.6 ms at 24 ticks per quarter and 165 qpm, 21 ms at 60 qpm. Aligners read note times
    off the rendering, so that error would pass into every start and end.
    """
    factor = max(1, FINE_RESOLUTION // resolution)
    fine = np.array(notes, dtype=np.int64)
    fine[:, :2] *= factor
    return render(fine, qpm, soundfont, out_wav, resolution=resolution * factor, **options)


def cqt_db(audio: np.ndarray, sr: int = SAMPLE_RATE, hop: int = V1_HOP) -> np.ndarray:
    """Constant-Q magnitude in dB relative to its maximum, shape (CQT_BINS, frames)."""
    return librosa.amplitude_to_db(_cqt_magnitude(audio, sr, hop), ref=np.max)


def _cqt_magnitude(audio: np.ndarray, sr: int, hop: int) -> np.ndarray:
    cqt = librosa.cqt(
        np.asarray(audio, dtype=np.float32), sr=sr, hop_length=hop, fmin=librosa.midi_to_hz(LOWEST_PITCH),
        n_bins=CQT_BINS, bins_per_octave=12 * BINS_PER_SEMITONE,
    )
    return np.abs(cqt)


def align_v1(recording: np.ndarray, rendering: np.ndarray, onsets_s: np.ndarray, offsets_s: np.ndarray,
             sr: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Note starts and ends (seconds in ``recording``) and the warping path (frame pairs, recording
    first, 32 ms hops, ascending) by the thesis method; ``onsets_s``/``offsets_s`` are note times in
    ``rendering``.

    A start is the first path point past the note's onset in the rendering, an end the last one
    before its offset; an end never precedes its start. As in the published code, score times are
    scaled onto the recording's frame count (``v1_frames_per_second``), which puts notes up to a
    frame later towards the end.
    """
    recording_db = cqt_db(recording, sr, V1_HOP)
    _, path = librosa.sequence.dtw(recording_db, cqt_db(rendering, sr, V1_HOP))
    path = path[::-1]
    last = len(path) - 1
    score_frames_per_second = v1_frames_per_second(len(recording), sr)
    first_after = np.searchsorted(path[:, 1], np.asarray(onsets_s) * score_frames_per_second, side="right")
    last_before = np.searchsorted(path[:, 1], np.asarray(offsets_s) * score_frames_per_second) - 1
    starts = path[np.clip(first_after, 0, last), 0] * V1_HOP / sr
    ends = np.maximum(path[np.clip(last_before, 0, last), 0] * V1_HOP / sr, starts)
    return starts, ends, path


def v1_frames_per_second(samples: int, sr: int = SAMPLE_RATE) -> float:
    """The rate v1 reads score times at: the recording's constant-Q frame count (one more than its
    length in hops) over its length, not the hop rate."""
    return (1 + samples // V1_HOP) / (samples / sr)


def published_lag(onsets_s: np.ndarray, qpm: float, recording_s: float, resolution: int = RESOLUTION,
                  sr: int = SAMPLE_RATE) -> np.ndarray:
    """How much later than the notes sound the published alignments put them (seconds, one per
    note at ``onsets_s``, its time in a rendering at ``qpm`` as long as the ``recording_s`` slice).

    Two steps of the method that made them add up: v1 reads a start at the first 32 ms frame past
    the onset scaled as in ``v1_frames_per_second`` (16 ms on average, up to a frame more towards
    the end), and the dataset's renderings, at ``resolution`` ticks per quarter, sounded every note
    half a tick early (see ``render_score``), so the recording was matched to rendering frames that
    far ahead of the score: 7.6 ms at 165 qpm, 21 ms at 60. Slow movements lag more.
    """
    onsets_s = np.asarray(onsets_s, dtype=float)
    first_after = np.floor(onsets_s * v1_frames_per_second(round(recording_s * sr), sr)) + 1
    return first_after * V1_HOP / sr - onsets_s + 60.0 / (qpm * resolution) / 2


def align_v2(recording: np.ndarray, rendering: np.ndarray, onsets_s: np.ndarray, offsets_s: np.ndarray,
             sr: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like ``align_v1`` (same arguments and returns; the path in 16 ms hops), by multiscale DTW on
    the ``spectral_shape`` of 16 ms constant-Q frames with note times interpolated along the path."""
    recording_db, rendering_db = padded_cqt_db(recording, rendering, sr)
    own = slice(PAD_FRAMES, PAD_FRAMES + len(recording) // V2_HOP)  # the recording without its padding
    path, _ = multiscale_dtw(*spectral_shape(recording_db, rendering_db, noise_floor(recording_db[:, own])))
    frames_per_second = sr / V2_HOP
    starts, ends = (
        np.maximum(warp(path, np.asarray(times) * frames_per_second + PAD_FRAMES) - PAD_FRAMES, 0.0) / frames_per_second
        for times in (onsets_s, offsets_s)
    )
    inside = np.clip(path - PAD_FRAMES, 0, [len(recording) // V2_HOP, len(rendering) // V2_HOP])
    return starts, ends, np.unique(inside, axis=0)


def noise_floor(recording_db: np.ndarray, quantile: float = NOISE_QUANTILE,
                margin_db: float = NOISE_MARGIN_DB) -> np.ndarray:
    """Per bin (column vector), the level below which a ``cqt_db`` spectrogram holds only noise:
    the median of its quietest frames, where no note sounds in a lead-in, tail or rest, plus a margin
    for the noise's own fluctuation."""
    loudest = recording_db.max(axis=0)
    quiet = recording_db[:, loudest <= np.quantile(loudest, quantile)]
    return np.median(quiet, axis=1, keepdims=True) + margin_db


def spectral_shape(recording_db: np.ndarray, rendering_db: np.ndarray,
                   floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames (n, CQT_BINS) of both spectrograms as the dB they rise above ``floor``, each frame
    scaled to unit length, so that a soft chord looks like a loud one. A frame that rises less than
    ``SOUND_SHARE`` of the recording's median frame is scaled as if it rose that much: noise
    flickering over the floor stays near zero, where silence is."""
    above = [np.maximum(db - floor, 0.0).T for db in (recording_db, rendering_db)]
    norms = [np.linalg.norm(a, axis=1, keepdims=True) for a in above]
    sounding = norms[0][norms[0] > 0]
    least = SOUND_SHARE * (np.median(sounding) if len(sounding) else 1.0)
    return above[0] / np.maximum(norms[0], least), above[1] / np.maximum(norms[1], least)


def padded_cqt_db(recording: np.ndarray, rendering: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """``cqt_db`` at v2's hop of both signals, each with PAD_FRAMES hops of silence on either side,
    from one constant-Q transform of the two laid end to end.

    One transform builds librosa's filters once, a fixed cost that matters for clips of a minute or
    less; the two paddings between the signals keep the longest filter (0.4 s at C3) from reaching
    across.
    """
    pad = PAD_FRAMES * V2_HOP
    parts = [np.pad(np.asarray(a, dtype=np.float32), (pad, pad + (-len(a)) % V2_HOP)) for a in (recording, rendering)]
    magnitude = _cqt_magnitude(np.concatenate(parts), sr, V2_HOP)
    split = len(parts[0]) // V2_HOP
    return (librosa.amplitude_to_db(magnitude[:, :split], ref=np.max),
            librosa.amplitude_to_db(magnitude[:, split:], ref=np.max))


def warp(path: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Recording frame (fractional) of each rendering frame (fractional) along a path.

    Where the path stays on one rendering frame over several recording frames, that frame maps to
    the middle of the run; in between, times are interpolated linearly.
    """
    columns, first = np.unique(path[:, 1], return_index=True)
    last = np.append(first[1:], len(path)) - 1
    middle = (path[first, 0] + path[last, 0]) / 2.0
    return np.interp(frames, columns, middle)


# ---------------------------------------------------------------- DTW with linear memory


@dataclass(frozen=True)
class Band:
    """For each row i (recording frame), the columns lo[i] <= j < hi[i] the DTW may visit."""

    lo: np.ndarray
    hi: np.ndarray

    @property
    def cells(self) -> int:
        """How many accumulated costs the DTW stores: its memory."""
        return int((self.hi - self.lo).sum())

    @classmethod
    def full(cls, n_rows: int, n_cols: int) -> Band:
        return cls(np.zeros(n_rows, dtype=np.int64), np.full(n_rows, n_cols, dtype=np.int64))


def band_around(path: np.ndarray, factor: int, n_rows: int, n_cols: int, radius: int = BAND_RADIUS) -> Band:
    """The cells of a ``factor`` times finer grid covered by a coarse ``path``, widened by ``radius``
    frames in both directions and made monotone, so every path inside it can reach the last cell."""
    lo = np.full(n_rows, n_cols, dtype=np.int64)
    hi = np.zeros(n_rows, dtype=np.int64)
    for offset in range(factor):
        rows = np.minimum(path[:, 0] * factor + offset, n_rows - 1)
        np.minimum.at(lo, rows, path[:, 1] * factor)
        np.maximum.at(hi, rows, (path[:, 1] + 1) * factor)
    size = 2 * radius + 1
    lo = np.clip(minimum_filter1d(lo, size) - radius, 0, n_cols)
    hi = np.clip(maximum_filter1d(hi, size) + radius, 1, n_cols)
    lo = np.minimum.accumulate(lo[::-1])[::-1]
    hi = np.maximum.accumulate(hi)
    lo[0], hi[-1] = 0, n_cols
    return Band(lo, hi)


def banded_dtw(x: np.ndarray, y: np.ndarray, band: Band) -> np.ndarray:
    """Warping path (ascending (row, column) pairs from (0, 0) to the last cell) between feature
    sequences x (n, d) and y (m, d) under Euclidean distance, visiting only the cells of ``band``.

    The steps, weights and tie order are librosa's defaults (diagonal, horizontal, vertical, all
    weight 1), so a full band gives the path of ``librosa.sequence.dtw``.
    """
    offset = np.concatenate([[0], np.cumsum(band.hi - band.lo)])
    cost = np.full(offset[-1], np.inf)  # allocated here, not in compiled code, so tracemalloc sees it
    step = np.zeros(offset[-1], dtype=np.int8)  # 0 diagonal, 1 from the row above, 2 from the left
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    return _banded_dtw(x, y, band.lo, band.hi, offset, cost, step)


def pool(features: np.ndarray, factor: int) -> np.ndarray:
    """Average every ``factor`` frames (n, d) -> (ceil(n / factor), d); the last group may be shorter."""
    if factor == 1:
        return features
    starts = np.arange(0, len(features), factor)
    sums = np.add.reduceat(features, starts, axis=0)
    return sums / np.diff(np.append(starts, len(features)))[:, None]


def multiscale_dtw(x: np.ndarray, y: np.ndarray, factor: int = MULTISCALE_FACTOR, coarsest: int = COARSEST_FRAMES,
                   radius: int = BAND_RADIUS) -> tuple[np.ndarray, list[int]]:
    """Warping path between x (n, d) and y (m, d), and the cells stored at each scale, coarsest first.

    Features are averaged over ``factor``**k frames for the smallest k that leaves at most
    ``coarsest`` frames; that copy gets a full DTW, each finer one a band around the path above.
    The full DTW is bounded and every band row holds a bounded number of cells, so memory grows
    linearly with length.
    """
    levels = 0
    while max(len(x), len(y)) > coarsest * factor**levels:
        levels += 1
    path = None
    cells = []
    for level in range(levels, -1, -1):
        xs, ys = pool(x, factor**level), pool(y, factor**level)
        band = Band.full(len(xs), len(ys)) if path is None else band_around(path, factor, len(xs), len(ys), radius)
        path = banded_dtw(xs, ys, band)
        cells.append(band.cells)
    return path, cells


@numba.njit(cache=True)
def _banded_dtw(x, y, lo, hi, offset, cost, step):  # pragma: no cover - compiled
    n, m = x.shape[0], y.shape[0]
    x_sq = np.zeros(n)
    y_sq = np.zeros(m)
    for i in range(n):
        x_sq[i] = np.dot(x[i], x[i])
    for j in range(m):
        y_sq[j] = np.dot(y[j], y[j])
    for i in range(n):
        for j in range(lo[i], hi[i]):
            d2 = x_sq[i] + y_sq[j] - 2.0 * np.dot(x[i], y[j])
            d = np.sqrt(d2) if d2 > 0.0 else 0.0
            k = offset[i] + j - lo[i]
            if i == 0 and j == 0:
                cost[k] = d
                continue
            best = np.inf
            move = 0
            if i > 0 and lo[i - 1] <= j - 1 < hi[i - 1]:
                best = cost[offset[i - 1] + j - 1 - lo[i - 1]]
            if j > lo[i] and cost[k - 1] < best:
                best = cost[k - 1]
                move = 2
            if i > 0 and lo[i - 1] <= j < hi[i - 1] and cost[offset[i - 1] + j - lo[i - 1]] < best:
                best = cost[offset[i - 1] + j - lo[i - 1]]
                move = 1
            cost[k] = best + d
            step[k] = move
    path = np.zeros((n + m, 2), dtype=np.int64)
    i, j, length = n - 1, m - 1, 0
    while True:
        path[length, 0] = i
        path[length, 1] = j
        length += 1
        if i == 0 and j == 0:
            break
        move = step[offset[i] + j - lo[i]]
        if move != 1:
            j -= 1
        if move != 2:
            i -= 1
    return path[:length][::-1].copy()


# ---------------------------------------------------------------- scoring and plotting


def read_alignment_csv(path: str | Path) -> np.ndarray:
    """A published alignment: (n, 2) start, end in seconds, one row per row of the notes CSV."""
    with open(path, newline="") as f:
        header = f.readline().strip()
        if header != "start,end":
            raise ValueError(f"{path}: expected columns start,end, found {header}")
        return np.loadtxt(f, delimiter=",", ndmin=2).reshape(-1, 2)


def onset_agreement(starts: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Mean and median |start - reference| in seconds and the share within 25, 50 and 100 ms.

    Tolerances are widened by a microsecond so that times on a 32 ms grid at exactly 32 ms apart
    count as within.
    """
    error = np.abs(np.asarray(starts, dtype=float) - np.asarray(reference, dtype=float))
    result = {"mean_abs_s": float(error.mean()), "median_abs_s": float(np.median(error))}
    for ms in (25, 50, 100):
        result[f"within_{ms}ms"] = float((error <= ms / 1000 + 1e-6).mean())
    return result


def plot_alignment(spectrogram_db: np.ndarray, starts: np.ndarray, ends: np.ndarray, pitches: np.ndarray,
                   hop_s: float = V1_HOP / SAMPLE_RATE, title: str = "", seconds: tuple[float, float] | None = None) -> bytes:
    """PNG of aligned notes over the recording's constant-Q spectrogram (``cqt_db`` layout), the
    thesis's Figure 5.3: a line from each note's start to its end at its pitch, a tick at its start.

    ``seconds`` zooms to a time range; a whole movement at once is too dense to read.
    """
    starts, ends, pitches = (np.asarray(a, dtype=float) for a in (starts, ends, pitches))
    rows = BINS_PER_SEMITONE * (pitches - LOWEST_PITCH) + 0.5  # the middle of the pitch's own bin
    fig, ax = plt.subplots(figsize=(12, 3.2))
    extent = (0.0, spectrogram_db.shape[1] * hop_s, 0.0, spectrogram_db.shape[0])
    ax.imshow(spectrogram_db, cmap="inferno", aspect="auto", origin="lower", extent=extent, interpolation="none")
    ax.add_collection(matplotlib.collections.LineCollection(
        np.stack([np.stack([starts, rows], 1), np.stack([ends, rows], 1)], 1), colors="lime", linewidths=1.2))
    ax.add_collection(matplotlib.collections.LineCollection(
        np.stack([np.stack([starts, rows - 2], 1), np.stack([starts, rows + 2], 1)], 1), colors="white",
        linewidths=0.6))
    octaves = np.arange(0, spectrogram_db.shape[0] + 1, 12 * BINS_PER_SEMITONE)
    ax.set_yticks(octaves, [f"C{3 + k}" for k in range(len(octaves))])
    ax.set(xlabel="time (s)", ylabel="pitch", title=title, xlim=seconds or extent[:2])
    return to_png(fig)


# ---------------------------------------------------------------- one recording, end to end

ALIGNERS = {"v1": align_v1, "v2": align_v2}
PLOT_SECONDS = 10.0  # the window of the alignment figure: a whole movement at once is too dense to read


class NoteCountMismatch(ValueError):
    """A published alignment whose rows are not the score's notes, so it cannot be compared note by note."""


def rendering_for(notes: np.ndarray, seconds: float, baroque_tuning: bool, soundfont: str | Path,
                  out_wav: str | Path) -> tuple[float, int, np.ndarray]:
    """Tempo, transposition and audio of the rendering a recording is aligned against: the score at the
    one tempo that lasts the slice's ``seconds`` (``LengthMismatch`` when no violinist would play it),
    a semitone down for a recording in baroque tuning."""
    transpose = -1 if baroque_tuning else 0
    qpm = tempo_for(notes, seconds)
    check_length(notes, qpm, seconds)
    return qpm, transpose, render_score(notes, qpm, soundfont, out_wav, transpose=transpose)


def align_notes(method: str, recording: np.ndarray, rendering: np.ndarray, notes: np.ndarray, qpm: float,
                resolution: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """Start and end in the recording (seconds) of every score note (ticks), the rendering played at ``qpm``."""
    score_seconds = notes[:, :2] * 60.0 / (qpm * resolution)
    starts, ends, _ = ALIGNERS[method](recording, rendering, score_seconds[:, 0], score_seconds[:, 1])
    return starts, ends


def alignment_png(recording: np.ndarray, starts: np.ndarray, ends: np.ndarray, pitches: np.ndarray, title: str,
                  seconds: float = PLOT_SECONDS) -> bytes:
    """``plot_alignment`` of the first ``seconds`` from the first aligned note, over just that audio's spectrogram."""
    first = float(np.floor(np.min(starts)))
    window = (first, first + seconds)
    spectrogram = cqt_db(recording[: int(window[1] * SAMPLE_RATE)])
    return plot_alignment(spectrogram, starts, ends, pitches, title=title, seconds=window)


def published_agreement(path: str | Path, starts: np.ndarray, lag: np.ndarray | float = 0.0) -> dict[str, float]:
    """``onset_agreement`` of the starts with a published alignment CSV of the same notes, whose
    starts are taken ``lag`` seconds earlier first (``published_lag``: the published method's own)."""
    reference = read_alignment_csv(path)
    if len(reference) != len(starts):
        raise NoteCountMismatch(f"{path} has {len(reference)} notes, the score {len(starts)}: not compared")
    return onset_agreement(starts, reference[:, 0] - lag)
