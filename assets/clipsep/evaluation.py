"""The CLIPSep evaluation of the MUSIC+ protocol over loaded models: one SDR table of the unprocessed
mixture, every query model with image (and, with real CLIP weights, text) queries and the PIT
baseline, and example separations to listen to."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import pandas as pd
import soundfile as sf

from assets.core.metric_keys import finite, metric_key
from models import clip_embed
from models import clipsep as cs

LABELS = {"clipsep": "CLIPSep", "nit": "CLIPSep-NIT", "pit": "PIT"}
STATS = [f"{k}_{stat}" for k in ("sdr", "sdri") for stat in ("mean", "sem", "median")]
COLUMNS = ["model", "query", "version", *STATS]


@dataclass(frozen=True)
class Evaluated:
    """A model to score and the registered version it came from."""

    version: str
    model: cs.CLIPSep


def text_sources(test: list[cs.Source], clip_model: str) -> list[cs.Source] | None:
    """The test windows with the text query "<label>" instead of their frames, when the CLIP model
    that embedded the frames is a real one (text and images share its space) and labels are known."""
    if clip_model == clip_embed.SMALL_CLIP or any(s.label is None for s in test):
        return None
    bundle = clip_embed.load_clip(clip_model)
    if not bundle.semantic:
        return None
    labels = sorted({s.label for s in test})
    by_label = dict(zip(labels, clip_embed.embed_texts(bundle, labels)))
    return [replace(s, query=by_label[s.label]) for s in test]


def summary_row(name: str, query: str, version: str, scores: dict[str, float], prefix: str) -> dict:
    """One table row from ``cs.evaluate`` scores: the ``prefix`` ("query" or "pit") statistics."""
    return {"model": name, "query": query, "version": version, **{k: scores[f"{prefix}_{k}"] for k in STATS}}


def mixture_row(scores: dict[str, float]) -> dict:
    """The unprocessed mixture's row, the table's reference: its SDRi is 0 by definition."""
    sdr = {f"sdr_{stat}": scores[f"mixture_sdr_{stat}"] for stat in ("mean", "sem", "median")}
    return {"model": "mixture", "query": "", "version": "", **sdr, **{k: 0.0 for k in STATS if k.startswith("sdri")}}


def sdr_table(
    queried: dict[str, Evaluated], pit: Evaluated | None, test: list[cs.Source], texts: list[cs.Source] | None,
    n_mixtures: int, seed: int,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The SDR table (the mixture first, then each query model, its text-query row and, after the
    first, PIT) and each query method's mean SDRi with image queries, the score that ranks them.

    Every model separates the same ``n_mixtures`` deterministic mixtures of ``test``, so the mixture
    and PIT rows are computed once, alongside the first query model.
    """
    rows, first, image_sdri = [], None, {}
    for method, entry in queried.items():
        scores = cs.evaluate(entry.model, test, n_mixtures, seed, pit.model if pit is not None and first is None else None)
        rows.append(summary_row(LABELS[method], "image", entry.version, scores, "query"))
        image_sdri[method] = scores["query_sdri_mean"]
        if texts is not None:
            text_scores = cs.evaluate(entry.model, texts, n_mixtures, seed)
            rows.append(summary_row(LABELS[method], "text", entry.version, text_scores, "query"))
        if first is None:
            first = mixture_row(scores)
            if pit is not None:
                rows.append(summary_row(LABELS["pit"], "", pit.version, scores, "pit"))
    return pd.DataFrame([first, *rows], columns=COLUMNS), image_sdri


def champion_baselines(table: pd.DataFrame) -> dict[str, float]:
    """What a query model must beat to become the champion: the unprocessed mixture's mean SDRi (0 dB),
    on the image-query SDRi that ranks the models. A model below it makes the mixture worse."""
    return {"mixture": float(table.loc[table["model"] == "mixture", "sdri_mean"].iloc[0])}


def sdr_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Every finite SDR statistic of the table as "<model>.<query or none>.<statistic>"."""
    return finite(
        {metric_key(f"{r['model']}.{r['query'] or 'none'}.{k}"): r[k] for r in table.to_dict("records") for k in STATS}
    )


def write_examples(out_dir: str, model: cs.CLIPSep, test: list[cs.Source], count: int, seed: int) -> None:
    """The first ``count`` evaluation mixtures, their sources and the separations, as WAV files."""
    os.makedirs(out_dir, exist_ok=True)
    for i, mix in enumerate(cs.deterministic_mixtures(test, count, seed)):
        sf.write(os.path.join(out_dir, f"mixture{i}.wav"), mix.audio, cs.SAMPLE_RATE)
        for j, (reference, query) in enumerate(zip(mix.sources, mix.queries)):
            label = test[mix.indices[j]].label or f"source{j}"
            sf.write(os.path.join(out_dir, f"mixture{i}-{label}-reference.wav"), reference, cs.SAMPLE_RATE)
            sf.write(os.path.join(out_dir, f"mixture{i}-{label}-separated.wav"), cs.separate(model, mix.audio, query), cs.SAMPLE_RATE)
