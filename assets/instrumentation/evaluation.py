"""The paper's Table 4.2 over loaded models: per-note accuracy on the test songs of the non-learned
baselines and of every architecture with and without entry hints, the confusion of its parts, and
the ranking that picks the champion.

Models rank by accuracy without hints, because that is how `baton instrument` runs them, and the
champion must beat the zone-based and closest-pitch baselines on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch import nn

from assets.core import plots
from assets.core.metric_keys import metric_key
from assets.instrumentation import baselines as part_baselines
from models import part_separation as ps
from models.part_separation import PartSong


RULE_BASELINES = ("zone-based", "closest-pitch")  # what a champion must beat: the baselines a user could run instead


@dataclass(frozen=True)
class ArchResult:
    rows: list[dict]  # its two Table 4.2 rows
    scores: dict[str, float]  # test_accuracy (with hints) and test_accuracy_no_hints, as fractions
    confusion: np.ndarray  # (n_parts, n_parts) note counts without hints, rows the true part


def baseline_rows(train: Sequence[PartSong], test: Sequence[PartSong], n_parts: int) -> list[dict]:
    """Accuracy of the non-learned baselines on the test songs, rows of the Table 4.2 layout."""
    labels = [s.label for s in test]
    zones = part_baselines.fit_zones(train, n_parts)
    predictions = {
        ("zone-based", "offline"): [part_baselines.predict_zones(zones, s.pitch) for s in test],
        ("zone-based (oracle)", "offline"): [part_baselines.predict_zones(part_baselines.oracle_zones(s), s.pitch) for s in test],
        ("closest-pitch", "online, entry hints"): [part_baselines.closest_pitch_song(s) for s in test],
        ("closest-pitch (mono)", "online, entry hints"): [part_baselines.closest_pitch_song(s, mono=True) for s in test],
    }
    return [
        {"model": model, "setting": setting, "accuracy": 100 * part_baselines.accuracy(pred, labels)}
        for (model, setting), pred in predictions.items()
    ]


def champion_baselines(baselines: list[dict]) -> dict[str, float]:
    """The accuracies of RULE_BASELINES, as fractions like the models' `test_accuracy_no_hints`."""
    return {r["model"]: r["accuracy"] / 100 for r in baselines if r["model"] in RULE_BASELINES}


def percent(fraction: float) -> str:
    """An accuracy as the messages that compare it with a baseline write it."""
    return f"{100 * fraction:.1f} %"


def zone_baseline(train: Sequence[PartSong], part_names: Sequence[str], scheme: str) -> dict:
    """What running the zone baseline takes: each part's pitch range fitted on the training songs."""
    zones = part_baselines.fit_zones(train, len(part_names))
    return {"zones": part_baselines.zone_ranges(zones, part_names), "part_names": list(part_names), "scheme": scheme}


def model_rows(arch: str, with_hints: dict, without_hints: dict) -> list[dict]:
    setting = "online" if arch in ps.ONLINE else "offline"
    return [
        {"model": arch, "setting": f"{setting}, entry hints", "accuracy": 100 * with_hints["accuracy"]},
        {"model": arch, "setting": setting, "accuracy": 100 * without_hints["accuracy"]},
    ]


def evaluate_arch(arch: str, model: nn.Module, cfg: ps.PartSepConfig, test: Sequence[PartSong], n_parts: int) -> ArchResult:
    """One trained architecture on the test songs, with and without entry hints."""
    with_hints, without = ps.evaluate(model, cfg, test, True), ps.evaluate(model, cfg, test, False)
    return ArchResult(
        rows=model_rows(arch, with_hints, without),
        scores={"test_accuracy": with_hints["accuracy"], "test_accuracy_no_hints": without["accuracy"]},
        confusion=part_baselines.confusion_matrix(without["predictions"], without["labels"], n_parts),
    )


def results_table(rows: list[dict]) -> pd.DataFrame:
    """Baselines first, then models, accuracy in percent with two decimals (the paper's layout)."""
    frame = pd.DataFrame(rows, columns=["model", "setting", "accuracy"])
    frame["accuracy"] = frame["accuracy"].round(2)
    return frame


def ranked(results: Mapping[str, ArchResult]) -> list[str]:
    """Architectures best first by accuracy without hints."""
    return sorted(results, key=lambda a: results[a].scores["test_accuracy_no_hints"], reverse=True)


def part_shares(confusion: np.ndarray) -> np.ndarray:
    """Each row of note counts as shares of its true part's notes (a part without notes stays 0)."""
    return confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)


def confusion_png(confusion: np.ndarray, part_names: Sequence[str], arch: str) -> bytes:
    return plots.matrix_png(
        part_shares(confusion), part_names, part_names, title=f"{arch}: confusion on the test songs",
        xlabel="predicted part", ylabel="true part", colour_label="share of the true part's notes", fmt="{:.2f}",
    )  # fmt: skip


def run_metrics(baselines: list[dict], results: Mapping[str, ArchResult]) -> dict[str, float]:
    """"<arch>.test_accuracy[_no_hints]" (fractions) and "baseline.<name>" (percent), as MLflow takes them."""
    metrics = {f"{arch}.{k}": v for arch, result in results.items() for k, v in result.scores.items()}
    return metrics | {"baseline." + metric_key(r["model"]): r["accuracy"] for r in baselines}
