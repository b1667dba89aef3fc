"""The clips CLIPSep learns from and the two-source mixtures it trains and is tested on."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.clipsep.config import CLIP_SAMPLES, EMBED_DIM, CLIPSepConfig


@dataclass
class Source:
    """One training or test clip: mono 16 kHz audio and its CLIP query, (512,) or per-frame (n, 512)."""

    audio: np.ndarray
    query: np.ndarray
    label: str | None = None


def query_vector(query: np.ndarray) -> np.ndarray:
    """The (512,) L2-normalised mean of per-frame CLIP embeddings (or of one embedding)."""
    q = np.asarray(query, dtype=np.float32).reshape(-1, EMBED_DIM).mean(0)
    return q / max(float(np.linalg.norm(q)), 1e-8)


@dataclass
class Mixture:
    """A two-source mixture with everything needed to train on it or score a separation of it."""

    audio: np.ndarray  # (N,) the sum of the scaled sources
    sources: np.ndarray  # (2, N) the scaled sources
    queries: np.ndarray  # (2, 512) normalised queries
    indices: tuple[int, int]


def _clip(audio: np.ndarray) -> np.ndarray:
    """``audio`` cut or zero-padded to one clip, so every mixture has the same length."""
    out = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    audio = np.asarray(audio, dtype=np.float32)[:CLIP_SAMPLES]
    out[: len(audio)] = audio
    return out


def _mix(sources: Sequence[Source], rng: np.random.Generator, gain_db: float) -> Mixture:
    """Two sources (of different labels where labels are known) each scaled by a random gain."""
    first = int(rng.integers(len(sources)))
    label = sources[first].label
    others = [j for j, s in enumerate(sources) if j != first and (label is None or s.label != label)]
    if not others:
        raise ValueError("need at least two sources with different labels")
    pair = (first, others[int(rng.integers(len(others)))])
    gains = 10 ** (rng.uniform(-gain_db, gain_db, size=2) / 20) if gain_db else np.ones(2)
    audio = np.stack([_clip(sources[i].audio) for i in pair])
    scaled = (audio * gains[:, None]).astype(np.float32)
    queries = np.stack([query_vector(sources[i].query) for i in pair])
    return Mixture(scaled.sum(0), scaled, queries, pair)


def deterministic_mixtures(sources: Sequence[Source], n: int, seed: int, gain_db: float = 0.0) -> list[Mixture]:
    """The MUSIC+ style evaluation set: mixture i draws its two sources (and gains) from an rng
    seeded with (seed, i) alone, so every mixture is reproducible without drawing the others."""
    return [_mix(sources, np.random.default_rng([seed, i]), gain_db) for i in range(n)]


def stack_mixtures(mixtures: Sequence[Mixture]) -> dict[str, torch.Tensor]:
    return {
        "mixture": torch.from_numpy(np.stack([m.audio for m in mixtures])),
        "sources": torch.from_numpy(np.stack([m.sources for m in mixtures])),
        "queries": torch.from_numpy(np.stack([m.queries for m in mixtures])),
    }


def mixture_batches(sources: Sequence[Source], cfg: CLIPSepConfig, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless deterministic batches of two-source mixtures with random gains."""
    rng = np.random.default_rng(seed)
    while True:
        yield stack_mixtures([_mix(sources, rng, cfg.gain_db) for _ in range(cfg.batch_size)])
