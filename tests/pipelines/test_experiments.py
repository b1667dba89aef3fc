"""Experiment jobs on a persistent Dagster instance, as `baton experiment` and the UI launch them."""

import glob
import os
import shutil

import dagster as dg
import music21
import pytest

from assets.scores.datasets import ScoreItem
from assets.scores.readers import read_item
from pipelines.cli import launch, main
from pipelines.cli.demo import DEMO_DATASETS, demo_configs
from pipelines.definitions import build_defs
from pipelines.experiments import CONFIGS, EXPERIMENT_TAG, EXPERIMENTS, STAGE_TAG
from storage import shards, tracking

CORPUS = os.path.join(os.path.dirname(music21.__file__), "corpus")


def chorales(n: int) -> list[str]:
    return sorted(glob.glob(os.path.join(CORPUS, "bach", "bwv2[0-9]*.mxl")))[:n]


def note_count(n: int) -> int:
    """The notes the reader finds in the first n chorales: the rows ingestion must write."""
    items = [ScoreItem("x", os.path.basename(path), path, "musicxml") for path in chorales(n)]
    return sum(len(track.notes) for item in items for track in read_item(item).tracks)


def score_batch(home, batch: str, n: int = 4, junk: bool = False) -> str:
    """An incoming_<batch> dataset: the first n Bach chorales of music21's corpus, or two unreadable files."""
    folder = os.path.join(home.raw, "incoming", batch)
    os.makedirs(folder)
    for path in [] if junk else chorales(n):
        shutil.copy(path, folder)
    if junk:
        with open(os.path.join(folder, "broken.mid"), "wb") as f:
            f.write(b"MThd\x00\x00\x00\x06garbage")
        with open(os.path.join(folder, "notes.txt"), "w") as f:
            f.write("not a score")
    return f"incoming_{batch}"


@pytest.fixture
def persistent(home, monkeypatch):
    """The persistent instance under <home>/dagster, as the CLI and `baton ui` open it."""
    monkeypatch.setenv("DAGSTER_HOME", home.dagster)  # instance_for sets it; restored afterwards
    with launch.instance_for(home) as instance:
        yield instance


def test_every_branch_has_one_job_whose_run_config_is_its_config(home, persistent):
    defs = build_defs(home)
    assert set(EXPERIMENTS) == set(CONFIGS) == set(launch.BRANCHES)
    for branch, config in CONFIGS.items():
        job = defs.resolve_job_def(f"{branch}_experiment")
        assert set(job.run_config_schema.config_type.fields) == set(config.model_fields)
        assert config.model_fields["stage"].default == "all"
    for branch, config in demo_configs(list(DEMO_DATASETS)).items():  # what `baton demo` launches is valid config
        dg.validate_run_config(defs.resolve_job_def(f"{branch}_experiment"), config)
    steps = [node.name for node in defs.resolve_job_def("muspy_experiment").nodes_in_topological_order]
    assert steps == ["muspy__datasets", "muspy__combined_models", "muspy__perplexity"]


def test_experiment_job_runs_its_stages_as_tagged_child_runs(home, persistent):
    dataset = score_batch(home, "few")
    job = launch.reconstructable_experiment("muspy", home)
    result = dg.execute_job(job, instance=persistent, run_config={"stage": "data", "datasets": [dataset]})
    assert result.success

    run = persistent.get_run_by_id(result.run_id)
    assert run.job_name == "muspy_experiment" and run.status == dg.DagsterRunStatus.SUCCESS
    children = persistent.get_runs(filters=dg.RunsFilter(tags={EXPERIMENT_TAG: result.run_id}))
    assert [(c.job_name, c.tags["dagster/partition"], c.tags[STAGE_TAG]) for c in children] == [
        ("ingest_scores_job", dataset, "muspy__datasets")
    ]
    assert children[0].status == dg.DagsterRunStatus.SUCCESS
    for asset, rows in (("notes", note_count(4)), ("event_sequences", 4)):
        event = persistent.get_latest_materialization_event(dg.AssetKey(asset))
        assert event.run_id == children[0].run_id and event.dagster_event.partition == dataset
        assert shards.read_manifest(home.datasets, asset, dataset).rows == rows
    assert persistent.get_latest_materialization_event(dg.AssetKey("music_lm")) is None  # stage=data trains nothing


# Right after another home ran the same experiment job in this process (see the home check below).
def test_a_failed_child_run_fails_the_experiment_and_names_it(home, persistent, capsys):
    good, junk = score_batch(home, "good", n=3), score_batch(home, "junk", junk=True)
    assert main(["experiment", "--stage", "data", "--datasets", junk, good]) == 1
    out = capsys.readouterr().out
    assert "FAIL muspy_experiment" in out
    assert f"FAIL ingest_scores_job[{junk}]" in out and f"ok   ingest_scores_job[{good}]" in out  # the next one still ran
    # In this test's home, not the previous test's: Dagster caches a rebuilt job by its pointer, which names the home.
    assert shards.read_manifest(home.datasets, "notes", good).rows == note_count(3)

    (experiment,) = persistent.get_runs(filters=dg.RunsFilter(job_name="muspy_experiment"))
    assert experiment.status == dg.DagsterRunStatus.FAILURE
    failures = [e for e in persistent.all_logs(experiment.run_id) if e.dagster_event and e.dagster_event.is_step_failure]
    (failure,) = failures
    assert failure.step_key == "muspy__perplexity"  # the last stage, after the others ran
    (failed,) = persistent.get_runs(filters=dg.RunsFilter(tags={EXPERIMENT_TAG: experiment.run_id}, statuses=[dg.DagsterRunStatus.FAILURE]))
    message = failure.dagster_event.event_specific_data.error.message
    assert f"ingest_scores_job[{junk}] (run {failed.run_id})" in message and "1 of 2 child runs failed" in message


def test_stage_data_and_ingest_write_notes_but_train_nothing(home, persistent, capsys):
    dataset = score_batch(home, "quartet")
    assert main(["ingest", dataset]) == 0
    out = capsys.readouterr().out
    assert f"ok   score_notes_job[{dataset}]" in out and "4 songs" in out
    assert shards.read_manifest(home.datasets, "notes", dataset).rows == note_count(4)
    assert shards.read_manifest(home.datasets, "event_sequences", dataset) is None

    assert main(["experiment", "--branch", "mmt", "--stage", "data", "--datasets", dataset]) == 0
    out = capsys.readouterr().out
    assert "ok   mmt_experiment" in out and f"ok   mmt_codes_job[{dataset}]" in out
    assert "score_notes_job" not in out  # the notes were there: not ingested again
    assert shards.read_table(home.datasets, "mmt_codes", dataset).num_rows == 4
    assert persistent.get_latest_materialization_event(dg.AssetKey("mmt_model")) is None
    assert tracking.get_alias_version(tracking.default_tracking_uri(home), "mmt", "candidate") is None
    (experiment,) = persistent.get_runs(filters=dg.RunsFilter(job_name="mmt_experiment"))
    assert experiment.run_config == {"stage": "data", "datasets": [dataset]}  # what the UI's Launchpad shows
