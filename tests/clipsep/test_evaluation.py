from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import CLIPImageProcessorPil, CLIPProcessor

from assets.clipsep import evaluation
from assets.clipsep.evaluation import Evaluated
from models import clip_embed
from models import clipsep as cs

SMOKE = cs.PROFILES["smoke"]


def tone_sources() -> list[cs.Source]:
    """Four windows of two labels: sine tones an octave apart, each label with its own query."""
    t = np.arange(cs.CLIP_SAMPLES) / cs.SAMPLE_RATE
    rng = np.random.default_rng(0)
    queries = {"low": rng.standard_normal((3, cs.EMBED_DIM)), "high": rng.standard_normal((3, cs.EMBED_DIM))}
    return [
        cs.Source((0.2 * np.sin(2 * np.pi * f * t)).astype(np.float32), queries[label].astype(np.float32), label)
        for label, f in (("low", 220.0), ("high", 880.0), ("low", 247.0), ("high", 988.0))
    ]


@pytest.fixture(scope="module")
def models() -> dict[str, Evaluated]:
    torch.manual_seed(0)
    return {m: Evaluated(str(i + 1), cs.build_model(replace(SMOKE, method=m)).eval()) for i, m in enumerate(cs.METHODS)}


def test_the_sdr_table_holds_the_mixture_every_query_model_its_text_queries_and_pit(models):
    test = tone_sources()
    texts = [replace(s, query=s.query[:1]) for s in test]
    queried = {"clipsep": models["clipsep"], "nit": models["nit"]}
    table, image_sdri = evaluation.sdr_table(queried, models["pit"], test, texts, n_mixtures=2, seed=0)
    assert list(table.columns) == evaluation.COLUMNS
    assert list(zip(table["model"], table["query"], table["version"])) == [
        ("mixture", "", ""), ("CLIPSep", "image", "1"), ("CLIPSep", "text", "1"), ("PIT", "", "3"),
        ("CLIPSep-NIT", "image", "2"), ("CLIPSep-NIT", "text", "2"),
    ]
    mixtures = cs.deterministic_mixtures(test, 2, 0)
    expected = np.mean([cs.sdr(ref, mix.audio) for mix in mixtures for ref in mix.sources])
    assert table.loc[0, "sdr_mean"] == pytest.approx(expected) and (table.loc[0, ["sdri_mean", "sdri_median"]] == 0).all()
    assert image_sdri == {"clipsep": table.loc[1, "sdri_mean"], "nit": table.loc[4, "sdri_mean"]}
    alone, _ = evaluation.sdr_table({"nit": models["nit"]}, None, test, None, n_mixtures=2, seed=0)
    assert list(alone["model"]) == ["mixture", "CLIPSep-NIT"]
    assert alone.loc[1, "sdr_mean"] == pytest.approx(table.loc[4, "sdr_mean"])  # the same mixtures for every model


def test_sdr_metrics_name_every_finite_statistic():
    row = {"model": "CLIPSep-NIT", "query": "", "version": "2", **{k: 1.0 for k in evaluation.STATS}, "sdr_sem": float("nan")}
    metrics = evaluation.sdr_metrics(pd.DataFrame([row], columns=evaluation.COLUMNS))
    assert metrics["CLIPSep-NIT.none.sdri_mean"] == 1.0 and "CLIPSep-NIT.none.sdr_sem" not in metrics
    assert len(metrics) == len(evaluation.STATS) - 1


def test_examples_are_each_mixture_its_references_and_separations(models, tmp_path):
    evaluation.write_examples(str(tmp_path / "examples"), models["nit"].model, tone_sources(), count=1, seed=0)
    names = sorted(p.name for p in (tmp_path / "examples").iterdir())
    assert "mixture0.wav" in names and len(names) == 5
    assert {n.split("-")[1] for n in names if n.endswith("-reference.wav")} == {"low", "high"}
    assert sum(n.endswith("-separated.wav") for n in names) == 2


def test_text_queries_come_from_a_semantic_clip_only(tmp_path):
    bundle = clip_embed.load_clip(clip_embed.SMALL_CLIP, "cpu")
    test = [cs.Source(np.zeros(cs.CLIP_SAMPLES, np.float32), np.ones((3, 512), np.float32), label) for label in ("flute", "oboe", "flute")]
    assert evaluation.text_sources(test, clip_embed.SMALL_CLIP) is None
    bundle.model.save_pretrained(tmp_path)  # the same weights as a real checkpoint, which loads as semantic
    CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=bundle.tokenizer).save_pretrained(tmp_path)
    texts = evaluation.text_sources(test, str(tmp_path))
    expected = clip_embed.embed_texts(bundle, ["flute", "oboe"])
    assert np.allclose(texts[0].query, expected[0], atol=1e-5) and np.allclose(texts[1].query, expected[1], atol=1e-5)
    assert np.array_equal(texts[0].query, texts[2].query) and [t.label for t in texts] == ["flute", "oboe", "flute"]
    assert evaluation.text_sources([*test[:2], cs.Source(test[0].audio, test[0].query, None)], str(tmp_path)) is None
