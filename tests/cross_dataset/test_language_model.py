import math
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
import torch

from assets.cross_dataset import events, language_model
from assets.scores import tables
from models import music_lm
from storage import shards

SMOKE = music_lm.PROFILES["smoke"]


def test_model_config_takes_the_arch_and_the_event_vocabulary():
    cfg = language_model.model_config(SMOKE, "gru")
    assert (cfg.arch, cfg.vocab_size, cfg.hidden_dim, cfg.max_steps) == ("gru", events.VOCAB_SIZE, SMOKE.hidden_dim, SMOKE.max_steps)
    with pytest.raises(ValueError, match="unknown arch 'mamba'"):
        language_model.model_config(SMOKE, "mamba")


def test_pooled_perplexity_weights_each_test_set_by_its_tokens():
    results = [{"loss": math.log(2), "tokens": 1}, {"loss": math.log(8), "tokens": 3}]
    assert language_model.pooled_perplexity(results) == pytest.approx(2**2.5)  # not the mean perplexity, 5
    with pytest.raises(ValueError, match="no test token"):
        language_model.pooled_perplexity([])


def write_events(root: str, dataset: str, seed: int, n_songs: int = 6) -> None:
    rng = np.random.default_rng(seed)
    rows = [
        {"dataset": dataset, "song": f"s{i}", "split": "test", "n_events": n, "events": rng.integers(0, 300, n).tolist()}
        for i, n in enumerate(rng.integers(20, 80, n_songs))
    ]
    shards.write_table(root, "event_sequences", dataset, pa.Table.from_pylist(rows, schema=tables.EVENTS))


SHORT = language_model.model_config(replace(SMOKE, seq_len=8), "transformer")


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """An LSTM at the smoke seq_len and a transformer that has positions for 8 steps only."""
    root = str(tmp_path_factory.mktemp("datasets"))
    write_events(root, "small", 0, n_songs=2)
    write_events(root, "large", 1, n_songs=12)
    torch.manual_seed(0)
    cfg = language_model.model_config(SMOKE, "lstm")
    models = {"m": (music_lm.build_model(cfg).eval(), cfg), "short": (music_lm.build_model(SHORT).eval(), SHORT)}
    matrix = language_model.perplexity_matrix(root, models, ["small", "large"], torch.device("cpu"))
    return root, models["m"][0], matrix, models


def test_each_model_is_scored_in_windows_of_its_own_seq_len(scored):
    root, _, matrix, models = scored
    cpu = torch.device("cpu")
    for name, (model, cfg) in models.items():
        for test_set in ("small", "large"):
            expected = music_lm.evaluate(model, language_model.sequence_source(root, test_set, "test")(), cfg.seq_len, cpu)
            assert matrix.loc[name, test_set] == pytest.approx(expected["perplexity"])
    lstm = models["m"][0]
    at_short = music_lm.evaluate(lstm, language_model.sequence_source(root, "large", "test")(), SHORT.seq_len, cpu)
    assert at_short["perplexity"] != pytest.approx(matrix.loc["m", "large"])  # the window length changes the score


def test_perplexity_on_tests_of_one_dataset_is_its_matrix_cell_and_of_two_lies_between(scored):
    root, model, matrix, _ = scored
    cpu = torch.device("cpu")
    one = language_model.perplexity_on_tests(root, model, ["small"], SMOKE.seq_len, cpu)
    assert one == pytest.approx(matrix.loc["m", "small"])
    both = language_model.perplexity_on_tests(root, model, ["small", "large"], SMOKE.seq_len, cpu)
    low, high = sorted(matrix.loc["m"])
    assert low < both < high and abs(both - matrix.loc["m", "large"]) < abs(both - matrix.loc["m", "small"])


def test_long_matrix_has_a_row_per_pair(scored):
    _, _, matrix, _ = scored
    long = language_model.long_matrix(matrix)
    assert list(long.columns) == ["trained_on", "tested_on", "perplexity"]
    pairs = [("m", "small"), ("short", "small"), ("m", "large"), ("short", "large")]
    assert list(zip(long["trained_on"], long["tested_on"])) == pairs
    assert long["perplexity"].tolist() == [matrix.loc[train, test] for train, test in pairs]
