"""The champion rule on a real sqlite registry: a model becomes `champion` only when it beats its
task's baselines, and inference finds the baseline record when nothing did."""

from pathlib import Path

import mlflow
import pytest

from storage import tracking


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"


def version_with(uri: str, tmp_path: Path, name: str, metrics: dict[str, float]):
    """A registered version of `name` whose training run carries `metrics`."""
    with tracking.start_run(uri, "baton", str(tmp_path / "artifacts"), f"{name}-train", {}) as run:
        mlflow.log_metrics(metrics)
        model_dir = tmp_path / f"model-{run.info.run_id}"
        model_dir.mkdir()
        (model_dir / "config.json").write_text("{}")
        mlflow.log_artifacts(str(model_dir), "model")
    tracking.register_version(uri, name, run.info.run_id, "model")
    return tracking.get_alias_version(uri, name, "candidate")


def champion_of(uri: str, name: str) -> str | None:
    champion = tracking.get_alias_version(uri, name, "champion")
    return None if champion is None else str(champion.version)


def test_a_candidate_below_a_baseline_never_becomes_champion(tmp_path, uri):
    baselines = {"zone-based": 0.70, "closest-pitch": 0.65}
    weak = version_with(uri, tmp_path, "sep", {"acc": 0.68})  # beats closest-pitch, not the zones
    assert not tracking.promote_if_better(uri, "sep", weak, "acc", lower_is_better=False, baselines=baselines)
    assert champion_of(uri, "sep") is None
    tag = tracking.get_version(uri, "sep", weak.version).tags[tracking.BELOW_BASELINE_TAG]
    assert "zone-based 0.7" in tag and "closest-pitch" not in tag
    # without baselines the same candidate would have been promoted: the baselines are what held it back
    assert tracking.promote_if_better(uri, "sep", weak, "acc", lower_is_better=False)


def test_a_candidate_above_every_baseline_becomes_champion(tmp_path, uri):
    baselines = {"zone-based": 0.70, "closest-pitch": 0.65}
    strong = version_with(uri, tmp_path, "sep", {"acc": 0.90})
    assert tracking.promote_if_better(uri, "sep", strong, "acc", lower_is_better=False, baselines=baselines)
    assert champion_of(uri, "sep") == str(strong.version)
    assert tracking.get_version(uri, "sep", strong.version).tags[tracking.BELOW_BASELINE_TAG] == ""
    equal = version_with(uri, tmp_path, "sep", {"acc": 0.95})  # better than the champion, but not than a baseline
    assert not tracking.promote_if_better(uri, "sep", equal, "acc", lower_is_better=False, baselines={"zone-based": 0.95})
    assert champion_of(uri, "sep") is None  # the champion (0.90) does not beat that baseline either


def test_a_vocoder_must_beat_griffin_lim_and_a_lower_error_wins(tmp_path, uri):
    worse = version_with(uri, tmp_path, "voc", {"mel_l1": 1.2})
    better = version_with(uri, tmp_path, "voc", {"mel_l1": 0.8})
    best = version_with(uri, tmp_path, "voc", {"mel_l1": 0.5})
    griffin_lim = {"Griffin-Lim": 1.0}
    assert not tracking.promote_if_better(uri, "voc", worse, "mel_l1", baselines=griffin_lim)
    assert tracking.promote_if_better(uri, "voc", better, "mel_l1", baselines=griffin_lim)
    assert not tracking.promote_if_better(uri, "voc", worse, "mel_l1", baselines=griffin_lim)
    assert champion_of(uri, "voc") == str(better.version)
    assert tracking.promote_if_better(uri, "voc", best, "mel_l1", baselines=griffin_lim)
    assert champion_of(uri, "voc") == str(best.version)


def test_inference_finds_the_baseline_record_only_when_the_rule_held_every_model_back(tmp_path, uri):
    assert tracking.baseline_in_place(uri, "baton", "sep", "champion", "sep_eval") is None  # nothing evaluated
    weak = version_with(uri, tmp_path, "sep", {"acc": 0.31})
    record = tracking.baseline_record("acc", False, {"zone-based": 0.70}, f"lstm v{weak.version}", 0.31,
                                      zones={"Soprano": [60, 127]})  # fmt: skip
    with tracking.start_run(uri, "baton", str(tmp_path / "artifacts"), "sep_eval", {}):
        mlflow.log_dict(record, tracking.BASELINE_ARTIFACT)
        tracking.promote_if_better(uri, "sep", weak, "acc", lower_is_better=False, baselines=record["baselines"])
    assert tracking.baseline_in_place(uri, "baton", "sep", "champion", "sep_eval") == record
    assert tracking.baseline_in_place(uri, "baton", "sep", "candidate", "sep_eval") is None  # another alias: no fallback
    with tracking.start_run(uri, "baton", str(tmp_path / "artifacts"), "sep_eval", {}):
        pass  # a newer evaluation that logged no record
    assert tracking.baseline_in_place(uri, "baton", "sep", "champion", "sep_eval") is None
    strong = version_with(uri, tmp_path, "sep", {"acc": 0.9})
    tracking.promote_if_better(uri, "sep", strong, "acc", lower_is_better=False, baselines={"zone-based": 0.70})
    assert tracking.baseline_in_place(uri, "baton", "sep", "champion", "sep_eval") is None  # a champion exists
