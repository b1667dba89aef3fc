"""Score-to-audio alignment: the thesis method (v1) against multiscale DTW at 16 ms (v2).

Usage: .venv/bin/python bench/alignment.py [--n 20] [--beats 64] [--out bench/results/alignment.json]

Synthetic: ``--n`` humanized performances (smooth random tempo within ±15 %, 15 ms onset jitter,
a random lead-in) of ``--beats``-beat excerpts of the sample's three movements and of violin lines
from the music21 corpus, rendered with FluidR3 GM and aligned with a MuseScore General rendering of
the score; the true onsets are known. Real: the three movements of the shared Bach Violin Dataset
sample (John Garner, CC BY 3.0, musopen.org) against the published alignments, which are
estimates made by v1's method. Per method: mean and median |Δonset|, share within 25/50/100 ms,
mean |Δoffset|, wall time and peak traced memory of the alignment (features and DTW; numba is
compiled before timing). The published starts are v1's, which the synthetic set finds late by a
steady 20-25 ms (the first frame past an onset, and score time stretched by up to a frame), so the
sample table also gives each method's median offset to them and its agreement once that constant
lag is removed. Writes JSON and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assets.core.tools import soundfont_path
from assets.violin import humanize
from assets.violin.alignment import (
    align_v1,
    align_v2,
    onset_agreement,
    read_alignment_csv,
    render_score,
)
from assets.violin.render import tempo_for
from assets.violin.scores import RESOLUTION, read_notes_csv
from assets.violin.sources import (
    SAMPLE_NAME,
    load_slice,
    sample_manifest,
    shared_data_dir,
)

METHODS: dict[str, Callable] = {"v1 (thesis: CQT 32 ms, full DTW)": align_v1, "v2 (CQT 16 ms, multiscale DTW)": align_v2}


def measure(method: Callable, recording, rendering, onsets, offsets) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Starts, ends, wall seconds of one run and peak traced bytes of a second one: tracing slows
    Python-heavy code (librosa's constant-Q filters) several-fold and compiled code not at all, so
    one traced run would misstate the time."""
    start = time.perf_counter()
    starts, ends, _ = method(recording, rendering, onsets, offsets)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    method(recording, rendering, onsets, offsets)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return starts, ends, seconds, peak


def scores(sample_dir: Path) -> list[humanize.Score]:
    """The sample's movements at their recorded tempo, then the corpus violin lines."""
    found = [
        humanize.Score(path.stem, read_notes_csv(path), float((sample_dir / "tempos" / f"{path.stem}.txt").read_text()))
        for path in sorted((sample_dir / "notes").glob("*.csv"))
    ]
    return found + [humanize.corpus_score(*piece) for piece in humanize.CORPUS_PIECES]


def synthetic(n: int, beats: float, sources: list[humanize.Score], soundfont: str) -> dict:
    rows: dict[str, dict] = {name: {"onset_errors": [], "offset_errors": [], "seconds": 0.0, "peak_bytes": 0}
                             for name in METHODS}
    for k in tqdm(range(n), desc="synthetic"):
        score = sources[k % len(sources)]
        rng = np.random.default_rng(k)
        length = score.notes[:, 1].max() / score.resolution
        start = float(rng.integers(0, max(1, int(length - beats)) + 1)) if length > beats else 0.0
        pair = humanize.synthetic_pair(humanize.excerpt(score, start, beats), k, soundfont)
        for name, method in METHODS.items():
            starts, ends, seconds, peak = measure(method, pair.recording, pair.rendering, pair.score_onsets_s,
                                                  pair.score_offsets_s)
            row = rows[name]
            row["onset_errors"].append(starts - pair.performance.onsets_s)
            row["offset_errors"].append(ends - pair.performance.offsets_s)
            row["seconds"] += seconds
            row["peak_bytes"] = max(row["peak_bytes"], peak)
    results = {}
    for name, row in rows.items():
        onset = np.concatenate(row["onset_errors"])
        offset = np.concatenate(row["offset_errors"])
        results[name] = {
            **onset_agreement(onset, np.zeros_like(onset)),
            "signed_median_s": float(np.median(onset)),
            "offset_mean_abs_s": float(np.abs(offset).mean()),
            "notes": len(onset),
            "seconds": row["seconds"],
            "peak_mib": row["peak_bytes"] / 2**20,
        }
    return results


def real(sample_dir: Path, soundfont: str) -> dict:
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-align-") as tmp:
        for recording in tqdm(sample_manifest(sample_dir.parent), desc="sample"):
            audio = load_slice(recording.path, recording.start, recording.end)
            notes = read_notes_csv(sample_dir / "notes" / f"{recording.id}.csv")
            published = read_alignment_csv(sample_dir / "alignments" / f"{recording.id}.csv")
            qpm = tempo_for(notes, recording.seconds)
            rendering = render_score(notes, qpm, soundfont, Path(tmp) / f"{recording.id}.wav")
            seconds = notes[:, :2] * 60.0 / (qpm * RESOLUTION)
            for name, method in METHODS.items():
                starts, ends, elapsed, peak = measure(method, audio, rendering, seconds[:, 0], seconds[:, 1])
                difference = starts - published[:, 0]
                lag = float(np.median(difference))
                results.setdefault(name, {})[recording.id] = {
                    **onset_agreement(starts, published[:, 0]),
                    "signed_median_s": lag,
                    "lag_removed": onset_agreement(difference - lag, np.zeros_like(difference)),
                    "offset_mean_abs_s": float(np.abs(ends - published[:, 1]).mean()),
                    "notes": len(notes),
                    "audio_s": recording.seconds,
                    "seconds": elapsed,
                    "peak_mib": peak / 2**20,
                    "attribution": recording.attribution,
                }
    return results


def warm_up(soundfont: str) -> None:
    """Compile numba code (librosa's and ours) before anything is timed."""
    notes = np.array([[24 * k, 24 * k + 24, 60 + k, 80] for k in range(8)])
    pair = humanize.synthetic_pair(humanize.Score("warm-up", notes, 120.0), 0, soundfont)
    for method in METHODS.values():
        method(pair.recording, pair.rendering, pair.score_onsets_s, pair.score_offsets_s)


def ms(value: float) -> str:
    return f"{1000 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20, help="synthetic performances")
    parser.add_argument("--beats", type=float, default=64.0, help="length of each synthetic excerpt in beats")
    parser.add_argument("--out", default="bench/results/alignment.json")
    args = parser.parse_args()
    sample_dir = shared_data_dir() / SAMPLE_NAME
    soundfont = soundfont_path()
    if soundfont is None:
        raise SystemExit("the MuseScore General SoundFont is missing (apt-get install musescore-general-soundfont-small)")
    warm_up(soundfont)
    results = {
        "synthetic": synthetic(args.n, args.beats, scores(sample_dir), soundfont),
        "sample": real(sample_dir, soundfont),
        "args": vars(args),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")

    print(f"\nSynthetic ground truth: {args.n} performances, {args.beats:g} beats each\n")
    print("| method | notes | mean |Δon| ms | median ms | ≤25 ms | ≤50 ms | ≤100 ms | signed median ms "
          "| mean |Δoff| ms | time s | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results["synthetic"].items():
        print(f"| {name} | {r['notes']} | {ms(r['mean_abs_s'])} | {ms(r['median_abs_s'])} | {r['within_25ms']:.3f} "
              f"| {r['within_50ms']:.3f} | {r['within_100ms']:.3f} | {ms(r['signed_median_s'])} "
              f"| {ms(r['offset_mean_abs_s'])} | {r['seconds']:.1f} | {r['peak_mib']:.0f} |")
    print("\nAgreement with the published alignments (v1 estimates, not ground truth)\n")
    print("| method | movement | mean |Δon| ms | median ms | ≤25 ms | ≤50 ms | ≤100 ms | signed median ms "
          "| lag removed: mean ms, ≤50 ms | time s | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, movements in results["sample"].items():
        for movement, r in movements.items():
            fixed = r["lag_removed"]
            print(f"| {name} | {movement} | {ms(r['mean_abs_s'])} | {ms(r['median_abs_s'])} | {r['within_25ms']:.3f} "
                  f"| {r['within_50ms']:.3f} | {r['within_100ms']:.3f} | {ms(r['signed_median_s'])} "
                  f"| {ms(fixed['mean_abs_s'])}, {fixed['within_50ms']:.3f} | {r['seconds']:.1f} | {r['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
