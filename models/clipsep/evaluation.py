"""Separation quality as BSS Eval SDR and its improvement over the mixture, on reproducible test mixtures."""

from __future__ import annotations

from collections.abc import Sequence

import museval
import numpy as np

from models.clipsep.inference import separate, separate_pit
from models.clipsep.mixtures import Source, deterministic_mixtures
from models.clipsep.network import CLIPSep


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """BSS Eval v4 SDR (museval) over the whole clip as one window; museval rejects a silent estimate."""
    n = len(reference)
    ref = np.asarray(reference, dtype=np.float64)[None, :, None]
    est = np.asarray(estimate, dtype=np.float64)[None, :n, None]
    return float(museval.metrics.bss_eval(ref, est, window=n, hop=n)[0][0, 0])


def sdri(reference: np.ndarray, estimate: np.ndarray, mixture: np.ndarray) -> float:
    """SDR improvement of an estimate over the unprocessed mixture."""
    return sdr(reference, estimate) - sdr(reference, mixture)


def _summary(prefix: str, values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    sem = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return {f"{prefix}_mean": float(v.mean()), f"{prefix}_sem": sem, f"{prefix}_median": float(np.median(v))}


def evaluate(
    model: CLIPSep, sources_test: Sequence[Source], n_mixtures: int, seed: int, pit_model: CLIPSep | None = None
) -> dict[str, float]:
    """SDR and SDRi (mean, SEM, median) over both sources of each of ``n_mixtures``
    :func:`deterministic_mixtures`: the query separation, the mixture itself (its SDRi is 0 by
    definition, so only its SDR is reported) and, given ``pit_model``, PIT's outputs assigned to
    the references by the permutation with the higher mean SDR."""
    scores: dict[str, list[float]] = {k: [] for k in ("query_sdr", "query_sdri", "mixture_sdr", "pit_sdr", "pit_sdri")}
    for mix in deterministic_mixtures(sources_test, n_mixtures, seed):
        mixture_sdr = [sdr(ref, mix.audio) for ref in mix.sources]
        scores["mixture_sdr"] += mixture_sdr
        for ref, query, base in zip(mix.sources, mix.queries, mixture_sdr):
            scores["query_sdr"].append(sdr(ref, separate(model, mix.audio, query)))
            scores["query_sdri"].append(scores["query_sdr"][-1] - base)
        if pit_model is not None:
            a, b = separate_pit(pit_model, mix.audio)
            options = [[sdr(mix.sources[0], x), sdr(mix.sources[1], y)] for x, y in ((a, b), (b, a))]
            best = max(options, key=np.mean)
            scores["pit_sdr"] += best
            scores["pit_sdri"] += [s - base for s, base in zip(best, mixture_sdr)]
    result = {"n_mixtures": float(n_mixtures)}
    for key, values in scores.items():
        if values:
            result |= _summary(key, values)
    return result
