"""The test queries of every CLIPSonic mode (thesis §7.3): for each test crop, the condition vector a
mode feeds the diffusion model and, where there is one, the ground-truth image embedding it should
be close to (Table 7.2).

- IQ: a frame of the crop's own video;
- shuffled: IQ's frames dealt to other crops, judged against the crop's label, a control that must stay
  near chance when generation follows the query;
- ZS: the CLIP text embedding of the label, fed to the image-trained model zero-shot;
- SD / PD: that text mapped into image space by the dataset's own (SD) or a pretrained (PD) prior;
- CLIP-TTA / CLAP-TTA: the label's text embedding, fed to a model trained on text embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("iq", "shuffled", "zs", "sd", "pd", "clip_tta", "clap_tta")
MODEL_OF = {"iq": "iq", "shuffled": "iq", "zs": "iq", "sd": "iq", "pd": "iq", "clip_tta": "clip_tta", "clap_tta": "clap_tta"}
NAMES = {
    "iq": "CLIPSonic-IQ", "shuffled": "CLIPSonic-IQ (shuffled queries)", "zs": "CLIPSonic-ZS", "sd": "CLIPSonic-SD",
    "pd": "CLIPSonic-PD", "clip_tta": "CLIP-TTA", "clap_tta": "CLAP-TTA", "reconstruction": "Reconstruction (vocoder)",
}  # fmt: skip


@dataclass
class Queries:
    """One mode's queries over the test crops: ``conditions[i]`` asks for ``labels[i]``."""

    mode: str
    labels: list[str]
    conditions: np.ndarray  # (n, dim)
    truth: np.ndarray | None = None  # (n, 512) ground-truth image embeddings, for CLIP-space queries


def image_queries(frames: list[np.ndarray], labels: list[str], seed: int) -> Queries:
    """IQ: one seeded frame of each crop's video; it is its own ground truth."""
    rng = np.random.default_rng(seed)
    picked = np.stack([f[rng.integers(len(f))] for f in frames])
    return Queries("iq", list(labels), picked, picked)


def shuffled_queries(iq: Queries, seed: int) -> Queries:
    """IQ's conditions in a seeded order, each crop keeping its own label."""
    order = np.random.default_rng([seed, 1]).permutation(len(iq.labels))
    return Queries("shuffled", iq.labels, iq.conditions[order], iq.truth)


def label_queries(mode: str, embeds: dict[str, np.ndarray], iq: Queries) -> Queries:
    """A text mode: each crop's query is its label's embedding (text, or text mapped by a prior)."""
    return Queries(mode, iq.labels, np.stack([embeds[label] for label in iq.labels]), iq.truth)


def per_query(mode: str, conditions: np.ndarray, iq: Queries) -> Queries:
    """A mode with one query embedding per crop (a prior's sample for each)."""
    return Queries(mode, iq.labels, np.asarray(conditions, dtype=np.float32), iq.truth)


def similarity(queries: Queries) -> float:
    """Mean cosine between each query and its ground-truth image embedding (thesis Table 7.2)."""
    q = queries.conditions / np.linalg.norm(queries.conditions, axis=1, keepdims=True)
    t = queries.truth / np.linalg.norm(queries.truth, axis=1, keepdims=True)
    return float(np.mean(np.sum(q * t, axis=1)))
