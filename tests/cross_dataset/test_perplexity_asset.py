"""cross_dataset_perplexity over registered models that were trained with different seq_lens."""

import os
from dataclasses import replace

import dagster as dg
import mlflow
import pytest
import torch

from assets.core.resources import HomeResource
from assets.cross_dataset import language_model
from assets.cross_dataset.defs import cross_dataset_perplexity, registry_name
from models import music_lm
from storage import shards, tracking
from storage.io_manager import ShardIOManager

from .test_language_model import SMOKE, write_events

TRANSFORMER = language_model.model_config(replace(SMOKE, seq_len=8), "transformer")
LSTM = language_model.model_config(SMOKE, "lstm")


def register(home, uri: str, training_set: str, cfg: music_lm.LMConfig, test_perplexity: float) -> torch.nn.Module:
    torch.manual_seed(0)
    model = music_lm.build_model(cfg).eval()
    model_dir = os.path.join(home.root, "trained", training_set)
    music_lm.save_model(model, cfg, model_dir)
    with tracking.start_run(uri, "baton", f"{home.mlflow}/artifacts", training_set, {}) as run:
        mlflow.log_metric("test_perplexity", test_perplexity)
        mlflow.log_artifacts(model_dir, "model")
    tracking.register_version(uri, registry_name(training_set), run.info.run_id, "model")
    return model


def test_every_model_is_scored_with_its_own_seq_len(home):
    """The transformer (positions for 8 steps) is loaded first, the LSTM (32) last: scoring both at
    the last one's seq_len would run the transformer past its positions."""
    uri = tracking.default_tracking_uri(home)
    write_events(home.datasets, "toy", 0)
    models = {name: (register(home, uri, name, cfg, 9.0), cfg) for name, cfg in (("toy", TRANSFORMER), ("all", LSTM))}

    result = dg.materialize(
        [cross_dataset_perplexity],
        resources={
            "home": HomeResource(root=home.root),
            "tracking": tracking.MlflowResource(tracking_uri=uri, artifact_root=f"{home.mlflow}/artifacts"),
            "shard_io": ShardIOManager(datasets_root=home.datasets),
        },
        run_config={"ops": {"cross_dataset_perplexity": {"config": {"datasets": ["toy"]}}}},
    )

    assert result.success
    matrix = shards.read_table(home.datasets, "cross_dataset_perplexity", "__all__").to_pandas()
    assert matrix["trained_on"].tolist() == ["toy", "all"] and matrix["tested_on"].tolist() == ["toy", "toy"]
    tests = language_model.sequence_source(home.datasets, "toy", "test")
    for (model, cfg), perplexity in zip(models.values(), matrix["perplexity"]):
        expected = music_lm.evaluate(model, tests(), cfg.seq_len, torch.device("cpu"))["perplexity"]
        assert perplexity == pytest.approx(expected, rel=1e-4)
    meta = result.asset_materializations_for_node("cross_dataset_perplexity")[0].metadata
    assert meta["promoted_to_champion"].value == ["toy"]
