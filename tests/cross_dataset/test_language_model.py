import math

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


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("datasets"))
    write_events(root, "small", 0, n_songs=2)
    write_events(root, "large", 1, n_songs=12)
    torch.manual_seed(0)
    model = music_lm.build_model(language_model.model_config(SMOKE, "lstm")).eval()
    matrix = language_model.perplexity_matrix(root, {"m": model}, ["small", "large"], SMOKE.seq_len, torch.device("cpu"))
    return root, model, matrix


def test_perplexity_on_tests_of_one_dataset_is_its_matrix_cell_and_of_two_lies_between(scored):
    root, model, matrix = scored
    cpu = torch.device("cpu")
    one = language_model.perplexity_on_tests(root, model, ["small"], SMOKE.seq_len, cpu)
    assert one == pytest.approx(matrix.loc["m", "small"])
    both = language_model.perplexity_on_tests(root, model, ["small", "large"], SMOKE.seq_len, cpu)
    low, high = sorted(matrix.loc["m"])
    assert low < both < high and abs(both - matrix.loc["m", "large"]) < abs(both - matrix.loc["m", "small"])


def test_long_matrix_has_a_row_per_pair(scored):
    _, _, matrix = scored
    long = language_model.long_matrix(matrix)
    assert list(long.columns) == ["trained_on", "tested_on", "perplexity"]
    assert list(zip(long["trained_on"], long["tested_on"])) == [("m", "small"), ("m", "large")]
    assert long["perplexity"].tolist() == matrix.loc["m"].tolist()
