"""A stop signal to the real `baton` command: the Dagster runs it was executing end canceled, its MLflow runs
killed, no step is retried and no later child run starts; it exits with the signal's status and one line."""

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import music21
import psutil
import pytest
from mlflow import MlflowClient

from pipelines.cli.launch import home_instance
from pipelines.experiments import EXPERIMENT_TAG
from storage.tracking import ASSET_KEY_TAG, RUN_ID_TAG, default_tracking_uri

BATON = str(Path(sys.executable).with_name("baton"))
REPO = str(Path(__file__).resolve().parents[2])
CHORALES = sorted(glob.glob(os.path.join(os.path.dirname(music21.__file__), "corpus", "bach", "bwv2[0-9]*.mxl")))
DEADLINE_S = 300  # for the command to reach the step it is stopped in, on a busy 2-core machine
RETRIES = {"STEP_UP_FOR_RETRY", "STEP_RESTARTED"}


def score_batch(home, n: int) -> str:
    """An incoming_<batch> dataset of the first n Bach chorales of music21's corpus."""
    folder = os.path.join(home.raw, "incoming", "chorales")
    os.makedirs(folder)
    for path in CHORALES[:n]:
        shutil.copy(path, folder)
    return "incoming_chorales"


@pytest.fixture
def instance(home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", home.dagster)  # home_instance sets it; restored afterwards
    with home_instance(home) as instance:
        yield instance


def start(home, tmp_path, *argv: str) -> tuple[subprocess.Popen, Path]:
    """`baton` with this checkout's code on the test's home; its stderr goes to a file."""
    env = {**os.environ, "BATON_HOME": home.root, "PYTHONPATH": REPO}
    err = tmp_path / "stderr.txt"
    with open(err, "w") as f, open(tmp_path / "stdout.txt", "w") as out:
        return subprocess.Popen([BATON, *argv], env=env, cwd=tmp_path, stdout=out, stderr=f), err


def wait_for(proc: subprocess.Popen, err: Path, found):
    """Poll `found()` until it returns something; the command must still be running."""
    deadline = time.monotonic() + DEADLINE_S
    while not (value := found()):
        assert proc.poll() is None, f"the command ended ({proc.returncode}) first:\n{err.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "the command did not get there in time"
        time.sleep(0.2)
    return value


def stop(proc: subprocess.Popen, signum: int) -> list[psutil.Process]:
    """Send `signum` to the command; the processes it had started, to check that none survives."""
    started = psutil.Process(proc.pid).children(recursive=True)
    assert started, "the command runs its work in a worker process"
    proc.send_signal(signum)
    assert proc.wait(timeout=120) == 128 + signum
    return started


def assert_one_line(err: Path, signum: int) -> str:
    """The stop's line is the command's last on stderr, and nothing printed a traceback."""
    text = err.read_text()
    assert "Traceback" not in text
    last = text.rstrip("\n").splitlines()[-1]
    assert last.startswith(f"interrupted by {signal.Signals(signum).name}: canceled run")
    return last


def test_sigterm_cancels_the_experiment_and_its_child_run_and_kills_its_mlflow_run(
    home, instance, tmp_path, assert_gone
):
    """Stopped while its child run trains music_lm, an asset with a retry policy (whose retry was the
    restart a user saw): nothing retries it, the next stages never start, no MLflow run stays RUNNING."""
    dataset = score_batch(home, 12)
    proc, err = start(home, tmp_path, "experiment", "--branch", "muspy", "--profile", "smoke", "--steps", "100000",
                      "--datasets", dataset)  # fmt: skip

    def music_lm_started():  # by then the MLflow store exists: opening it does not race the command creating it
        return [run for run in instance.get_runs(dg.RunsFilter(job_name="symbolic_dataset"))
                if any(e.step_key == "music_lm" for e in instance.all_logs(run.run_id, dg.DagsterEventType.STEP_START))]

    wait_for(proc, err, music_lm_started)
    client = MlflowClient(default_tracking_uri(home))

    def training():
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(experiments, "attributes.status = 'RUNNING'") if experiments else []
        return [run for run in runs if run.data.tags.get(ASSET_KEY_TAG) == "music_lm"]

    (trained,) = wait_for(proc, err, training)
    runs_before = {run.run_id for run in instance.get_runs()}
    started = stop(proc, signal.SIGTERM)

    line = assert_one_line(err, signal.SIGTERM)
    assert_gone(started)
    (experiment,) = instance.get_runs(dg.RunsFilter(job_name="muspy_experiment"))
    origin = experiment.remote_job_origin  # the UI's code location's, which the Overview timeline needs
    assert (origin.location_name, origin.repository_origin.repository_name) == ("baton", "__repository__")
    children = instance.get_runs(dg.RunsFilter(tags={EXPERIMENT_TAG: experiment.run_id}))
    assert {run.run_id for run in instance.get_runs()} == runs_before  # no child run started after the signal
    assert [(c.job_name, c.run_id) for c in children] == [("symbolic_dataset", trained.data.tags[RUN_ID_TAG])]
    for run in (experiment, *children):
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
        assert run.run_id in line
        events = {e.dagster_event.event_type_value for e in instance.all_logs(run.run_id) if e.dagster_event}
        assert not events & RETRIES and "PIPELINE_FAILURE" not in events
    stages = {e.step_key for e in instance.all_logs(experiment.run_id, dg.DagsterEventType.STEP_START)}
    assert stages == {"muspy__datasets"}  # the later stages never started
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert not client.search_runs(experiments, "attributes.status = 'RUNNING'")
    assert client.get_run(trained.info.run_id).info.status == "KILLED"


def test_sigint_cancels_an_ingest_run(home, instance, tmp_path, assert_gone):
    """`baton ingest` runs its jobs without an experiment run: the one executing ends canceled, and the
    datasets after it are never started."""
    first = score_batch(home, 60)
    second = os.path.join(home.raw, "incoming", "more")
    shutil.copytree(os.path.join(home.raw, "incoming", "chorales"), second)
    proc, err = start(home, tmp_path, "ingest", first, "incoming_more")

    def executing():
        return instance.get_runs(dg.RunsFilter(job_name="score_notes_job", statuses=[dg.DagsterRunStatus.STARTED]))

    (running,) = wait_for(proc, err, executing)
    started = stop(proc, signal.SIGINT)

    line = assert_one_line(err, signal.SIGINT)
    assert_gone(started)
    assert running.run_id in line
    runs = instance.get_runs(dg.RunsFilter(job_name="score_notes_job"))
    assert [(r.run_id, r.status) for r in runs] == [(running.run_id, dg.DagsterRunStatus.CANCELED)]
    assert runs[0].tags["dagster/partition"] == first
