"""Objective metrics of MMT samples, as in the MMT paper's evaluation.

Pitch-class entropy, scale consistency and groove consistency are muspy's own metrics on the
first 64 beats of each decoded sample (groove over 4-beat measures), so generated and
ground-truth music are compared on excerpts of the same length.

A sample without notes has no defined metric (nor has groove consistency an excerpt shorter
than two measures): such metrics are NaN and left out of the means, as the published
evaluation does with `nanmean`. An empty sample still counts in the sample length means (as
0 notes, 0 beats) and in the `empty` count, so an output full of empty samples shows up
instead of vanishing.
"""

from __future__ import annotations

import math

import muspy
import numpy as np

from models.mmt.encoding import RESOLUTION, decode

EVAL_BEATS = 64
MEASURE_BEATS = 4
METRICS = ("pitch_class_entropy", "scale_consistency", "groove_consistency")


def excerpt(codes: np.ndarray, n_beats: int = EVAL_BEATS) -> muspy.Music:
    """The decoded sample cut at `n_beats`: later notes dropped, notes crossing the cut shortened."""
    return _cut(decode(codes), n_beats)


def _cut(music: muspy.Music, n_beats: int) -> muspy.Music:
    return music.trim(n_beats * RESOLUTION)


def sample_metrics(codes: np.ndarray, n_beats: int = EVAL_BEATS) -> dict[str, float]:
    """The three metrics on the excerpt (NaN without notes), plus the whole sample's notes and beats."""
    music = decode(codes)
    n_notes = sum(len(track.notes) for track in music.tracks)
    length = {"n_notes": float(n_notes), "n_beats": music.get_end_time() / RESOLUTION}
    clip = _cut(music, n_beats)
    if not any(track.notes for track in clip.tracks):
        return {**dict.fromkeys(METRICS, math.nan), **length}
    return {
        "pitch_class_entropy": float(muspy.pitch_class_entropy(clip)),
        "scale_consistency": float(muspy.scale_consistency(clip)),
        "groove_consistency": float(muspy.groove_consistency(clip, MEASURE_BEATS * RESOLUTION)),
        **length,
    }


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def compare(generated: list[np.ndarray], truth: list[np.ndarray], n_beats: int = EVAL_BEATS) -> dict[str, float]:
    """Mean metrics of generated and ground-truth samples and their absolute gaps.

    Keys: `generated_<metric>`, `truth_<metric>`, `gap_<metric>` for each of METRICS;
    `generated_n_notes`, `generated_n_beats` (mean sample length); `generated_empty`,
    `truth_empty` (samples without notes).
    """
    scores = {
        side: [sample_metrics(codes, n_beats) for codes in samples]
        for side, samples in (("generated", generated), ("truth", truth))
    }
    result: dict[str, float] = {}
    for metric in METRICS:
        for side, rows in scores.items():
            result[f"{side}_{metric}"] = _nanmean([row[metric] for row in rows])
        result[f"gap_{metric}"] = abs(result[f"generated_{metric}"] - result[f"truth_{metric}"])
    for key in ("n_notes", "n_beats"):
        result[f"generated_{key}"] = _nanmean([row[key] for row in scores["generated"]])
    for side, rows in scores.items():
        result[f"{side}_empty"] = float(sum(row["n_notes"] == 0 for row in rows))
    return result
