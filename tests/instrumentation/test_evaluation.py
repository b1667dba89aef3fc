import io

import numpy as np
import pytest
from PIL import Image

from assets.instrumentation import evaluation
from assets.instrumentation.evaluation import ArchResult
from models import part_separation as ps
from models.part_separation import PartSong


def song(name: str, rng: np.random.Generator, n_notes: int = 80) -> PartSong:
    """Four voices an octave apart with overlapping ranges."""
    label = rng.integers(0, 4, n_notes)
    pitch = np.clip(76 - 7 * label + rng.integers(-5, 6, n_notes), 0, 127)
    onset = np.sort(rng.integers(0, 24 * n_notes, n_notes))
    order = np.lexsort((pitch, onset))
    arrays = [a[order].astype(np.int64) for a in (onset, np.full(n_notes, 12), pitch, label)]
    return PartSong("toy", name, "test", "satb", tuple("SATB"), *arrays)


@pytest.fixture(scope="module")
def songs() -> tuple[list[PartSong], list[PartSong]]:
    rng = np.random.default_rng(0)
    return [song(f"train{i}", rng) for i in range(6)], [song(f"test{i}", rng) for i in range(3)]


def test_baseline_rows_are_the_four_baselines_in_percent(songs):
    train, test = songs
    rows = evaluation.baseline_rows(train, test, 4)
    assert [r["model"] for r in rows] == ["zone-based", "zone-based (oracle)", "closest-pitch", "closest-pitch (mono)"]
    assert all(0 <= r["accuracy"] <= 100 for r in rows)
    assert rows[1]["accuracy"] >= rows[0]["accuracy"]  # zones fitted on the test song itself cannot do worse


def test_an_architecture_is_scored_with_and_without_hints_and_its_confusion_counts_every_note(songs):
    train, test = songs
    cfg = ps.configure(ps.PROFILES["smoke"], train)
    model = ps.build_model(cfg).eval()
    result = evaluation.evaluate_arch(cfg.arch, model, cfg, test, 4)
    assert [r["setting"].endswith("entry hints") for r in result.rows] == [True, False]
    assert result.rows[1]["accuracy"] == pytest.approx(100 * result.scores["test_accuracy_no_hints"])
    assert result.confusion.shape == (4, 4) and result.confusion.sum() == sum(len(s.pitch) for s in test)
    assert np.trace(result.confusion) / result.confusion.sum() == pytest.approx(result.scores["test_accuracy_no_hints"])


def result(with_hints: float, without: float) -> ArchResult:
    return ArchResult([], {"test_accuracy": with_hints, "test_accuracy_no_hints": without}, np.array([[3, 1], [0, 0]]))


def test_architectures_rank_by_accuracy_without_hints():
    results = {"lstm": result(0.99, 0.8), "transformer": result(0.9, 0.85), "lookahead": result(0.95, 0.5)}
    assert evaluation.ranked(results) == ["transformer", "lstm", "lookahead"]


def test_confusion_rows_become_shares_of_the_true_part():
    np.testing.assert_allclose(evaluation.part_shares(np.array([[3, 1], [0, 0]])), [[0.75, 0.25], [0.0, 0.0]])
    png = evaluation.confusion_png(np.array([[3, 1], [0, 2]]), ["S", "B"], "lstm")
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_run_metrics_name_the_architectures_and_baselines_as_mlflow_takes_them():
    baselines = [{"model": "zone-based (oracle)", "setting": "offline", "accuracy": 91.5}]
    metrics = evaluation.run_metrics(baselines, {"lstm": result(0.9, 0.8)})
    assert metrics == {"lstm.test_accuracy": 0.9, "lstm.test_accuracy_no_hints": 0.8, "baseline.zone-based_oracle": 91.5}


def test_the_results_table_rounds_accuracy_to_two_decimals():
    table = evaluation.results_table([{"model": "lstm", "setting": "online", "accuracy": 91.23456}])
    assert list(table.columns) == ["model", "setting", "accuracy"] and table.loc[0, "accuracy"] == 91.23
