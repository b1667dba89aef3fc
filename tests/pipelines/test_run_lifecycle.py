"""Killed runs end cleanly and resume: dead Dagster runs are failed, their MLflow runs ended, and the
next run of the same training setup resumes from its checkpoint."""

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
from dagster._core.events import EngineEventData  # the pid record executors write
from dagster._core.workspace.context import WorkspaceProcessContext  # what the daemon's monitoring loop takes
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from mlflow import MlflowClient

from assets.core.partitions import DATASETS
from assets.core.resources import HomeResource
from assets.cross_dataset.defs import music_lm
from assets.scores import tables
from models.checkpoints import locked_folder
from pipelines.run_cleanup import end_tracking_runs
from storage import shards, tracking

STUCK_ASSET = """
import os, sys, time
import dagster as dg
from storage.tracking import MlflowResource

@dg.asset
def stuck(context: dg.AssetExecutionContext, tracking: MlflowResource) -> None:
    with tracking.run(context) as run:
        with open(sys.argv[1] + ".tmp", "w") as f:
            f.write(f"{context.run_id} {run.info.run_id}")
        os.replace(sys.argv[1] + ".tmp", sys.argv[1])
        time.sleep(600)

dg.materialize([stuck], instance=dg.DagsterInstance.get(), resources={"tracking": MlflowResource(tracking_uri=sys.argv[2])})
"""


def start_stuck_run(tmp_path: Path, name: str, uri: str) -> tuple[subprocess.Popen, str, str]:
    """A real run in its own process, blocked inside its MLflow run; its Dagster and MLflow run ids."""
    script, marker = tmp_path / "stuck.py", tmp_path / f"{name}.started"
    script.write_text(STUCK_ASSET)
    proc = subprocess.Popen([sys.executable, str(script), str(marker), uri], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not marker.exists():
        assert proc.poll() is None, "the run's process exited before it started its asset"
        assert time.monotonic() < deadline, "the run never started its asset"
        time.sleep(0.1)
    dagster_run, mlflow_run = marker.read_text().split()
    return proc, dagster_run, mlflow_run


def monitor_once(instance: dg.DagsterInstance) -> None:
    """One iteration of the daemon's run monitoring, as `dagster-daemon run` does every poll."""
    with WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as workspace:
        errors = [e for e in execute_run_monitoring_iteration(workspace, logging.getLogger("monitor")) if e]
    assert not errors


def failure_event(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterEvent:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    return records[0].event_log_entry.dagster_event


def test_the_home_instance_monitors_runs(home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", home.dagster)
    instance = dg.DagsterInstance.get()
    assert instance.run_monitoring_enabled
    assert instance.run_launcher.supports_check_run_worker_health
    assert instance.run_monitoring_max_resume_run_attempts == 0


@contextmanager
def killed_beside_alive(tmp_path: Path, uri: str) -> Iterator[tuple[str, str, str]]:
    """Two STARTED runs in their own processes, the first killed with kill -9: yields its Dagster
    and MLflow run ids and the live run's id; the live process is killed on the way out."""
    killed, killed_run, killed_mlflow = start_stuck_run(tmp_path, "killed", uri)
    alive, alive_run, _ = start_stuck_run(tmp_path, "alive", uri)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        yield killed_run, killed_mlflow, alive_run
    finally:
        for proc in (killed, alive):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_killed_run_is_failed_by_monitoring_and_its_mlflow_run_ended(home, tmp_path, monkeypatch):
    """kill -9 leaves the run STARTED and its MLflow run RUNNING; one monitoring pass fails it (a live
    run beside it is left alone) and the failure sensor ends its MLflow run as KILLED."""
    monkeypatch.setenv("DAGSTER_HOME", home.dagster)
    uri = tracking.default_tracking_uri(home)
    with killed_beside_alive(tmp_path, uri) as (killed_run, killed_mlflow, alive_run):
        instance = dg.DagsterInstance.get()
        assert instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.STARTED
        assert MlflowClient(uri).get_run(killed_mlflow).info.status == "RUNNING"

        monitor_once(instance)

        assert instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive_run).status == dg.DagsterRunStatus.STARTED
        context = dg.build_run_status_sensor_context(
            "end_tracking_runs_of_failed_runs", failure_event(instance, killed_run), instance,
            instance.get_run_by_id(killed_run),
        ).for_run_failure()  # fmt: skip
        end_tracking_runs(context, tracking=tracking.MlflowResource(tracking_uri=uri))
        assert MlflowClient(uri).get_run(killed_mlflow).info.status == "KILLED"


def test_commands_fail_killed_runs_when_they_open_the_instance(home, tmp_path, monkeypatch):
    """Without a daemon, the CLI's instance marks a killed run failed and leaves a live one STARTED."""
    from pipelines.cli.launch import instance_for

    monkeypatch.setenv("DAGSTER_HOME", home.dagster)
    with killed_beside_alive(tmp_path, tracking.default_tracking_uri(home)) as (killed_run, _, alive_run):
        instance = instance_for(home)
        assert instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive_run).status == dg.DagsterRunStatus.STARTED


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b"]))
def tracked(context: dg.AssetExecutionContext, tracking: tracking.MlflowResource) -> None:
    with tracking.run(context):
        pass


def attempt(uri: str, run_id: str, partition: str) -> str:
    """A RUNNING MLflow run as an attempt of `tracked[partition]` in Dagster run `run_id` leaves it."""
    run = tracking._client(uri).create_run(
        tracking.ensure_experiment(uri, "baton", ""),
        tags={tracking.RUN_ID_TAG: run_id, tracking.ASSET_KEY_TAG: "tracked", tracking.PARTITION_TAG: partition},
    )
    return run.info.run_id


@pytest.fixture(scope="module")
def uri(tmp_path_factory) -> str:
    """One MLflow store for the tests that only look at run statuses: creating one takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def started_run(instance: dg.DagsterInstance, worker_pid: int) -> dg.DagsterRun:
    """A STARTED run whose executor recorded `worker_pid`, as every executor does when it starts."""
    run = instance.add_run(dg.DagsterRun(job_name="other", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED))
    instance.report_engine_event("Executing steps in process", run, EngineEventData.in_process(worker_pid))
    return run


def test_the_next_attempt_ends_mlflow_runs_of_dead_attempts(uri):
    """Dead: a failed run, a run the instance does not know, a STARTED run whose worker was killed
    while no daemon watched. Kept: a run whose worker lives, and another partition."""
    instance = dg.DagsterInstance.ephemeral()
    exited = subprocess.Popen([sys.executable, "-c", ""])
    exited.wait()
    live, killed = started_run(instance, os.getpid()), started_run(instance, exited.pid)
    failed = instance.add_run(dg.DagsterRun(job_name="other", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.FAILURE))
    dead = {attempt(uri, failed.run_id, "a"), attempt(uri, str(uuid.uuid4()), "a"), attempt(uri, killed.run_id, "a")}
    kept = {attempt(uri, live.run_id, "a"), attempt(uri, failed.run_id, "b")}

    result = dg.materialize(
        [tracked], instance=instance, partition_key="a", resources={"tracking": tracking.MlflowResource(tracking_uri=uri)}
    )

    assert result.success
    client = MlflowClient(uri)
    assert {client.get_run(r).info.status for r in dead} == {"KILLED"}
    assert {client.get_run(r).info.status for r in kept} == {"RUNNING"}


@pytest.mark.parametrize(
    "raised, status",
    [(None, "FINISHED"), (ValueError("bad batch"), "FAILED"), (KeyboardInterrupt(), "KILLED"),
     (dg.DagsterExecutionInterruptedError(), "KILLED")],
)  # fmt: skip
def test_a_run_ends_with_the_status_of_how_it_stopped(tmp_path, uri, raised, status):
    try:
        with tracking.start_run(uri, "baton", str(tmp_path / "artifacts"), "r", {}) as run:
            if raised is not None:
                raise raised
    except BaseException as exc:
        assert exc is raised
    assert MlflowClient(uri).get_run(run.info.run_id).info.status == status


def write_splits(root: str, dataset: str, seed: int = 0) -> None:
    """Event sequences with train, valid and test songs: what music_lm trains on."""
    rng = np.random.default_rng(seed)
    rows = [
        {"dataset": dataset, "song": f"s{i}", "split": split, "n_events": 60, "events": rng.integers(0, 300, 60).tolist()}
        for i, split in enumerate(["train"] * 6 + ["valid", "valid", "test"])
    ]
    shards.write_table(root, "event_sequences", dataset, pa.Table.from_pylist(rows, schema=tables.EVENTS))


@pytest.fixture
def lm_home(home):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(DATASETS.name, ["toy"])
    write_splits(home.datasets, "toy")
    return home, instance


def train(lm_home, raise_on_error: bool = True, **config) -> dg.ExecuteInProcessResult:
    home, instance = lm_home
    uri = tracking.default_tracking_uri(home)
    return dg.materialize(
        [music_lm], instance=instance, partition_key="toy", raise_on_error=raise_on_error,
        resources={"home": HomeResource(root=home.root), "tracking": tracking.MlflowResource(tracking_uri=uri)},
        run_config={"ops": {"music_lm": {"config": {"profile": "smoke", **config}}}},
    )  # fmt: skip


def resumed_from(result: dg.ExecuteInProcessResult) -> int:
    return result.asset_materializations_for_node("music_lm")[0].metadata["resumed_from"].value


def config_folders(home) -> list[Path]:
    return sorted(Path(home.checkpoints, "music_lm", "toy").iterdir())


def test_the_same_training_setup_resumes_and_another_starts_fresh(lm_home):
    home, _ = lm_home
    assert resumed_from(train(lm_home, max_steps=5)) == -1
    (folder,) = config_folders(home)
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "best.pt", "last.pt"]  # the exported model is gone

    assert resumed_from(train(lm_home, max_steps=10)) == 5  # a new run of the same setup, not a re-execution
    assert config_folders(home) == [folder]
    assert resumed_from(train(lm_home, max_steps=5, seed=1)) == -1
    assert len(config_folders(home)) == 2

    write_splits(home.datasets, "toy", seed=1)  # other training data
    assert resumed_from(train(lm_home, max_steps=5)) == -1


def test_stale_checkpoint_folders_of_other_setups_are_removed(lm_home):
    home, _ = lm_home
    parent = Path(home.checkpoints, "music_lm", "toy")
    old = parent / "0123456789abcdef"  # e.g. an abandoned run's folder, unused for a month
    (old / "last.pt").parent.mkdir(parents=True)
    (old / "last.pt").write_bytes(b"x" * 1000)
    month_ago = time.time() - 30 * 24 * 3600
    os.utime(old, (month_ago, month_ago))

    train(lm_home, max_steps=5)

    assert not old.exists() and len(config_folders(home)) == 1


def test_a_second_run_of_the_same_setup_is_refused_while_the_first_holds_it(lm_home):
    """The lock is per open file, so holding it here blocks the run as another process would."""
    home, _ = lm_home
    train(lm_home, max_steps=5)
    (folder,) = config_folders(home)
    with locked_folder(folder):
        refused = train(lm_home, raise_on_error=False, max_steps=10)
    assert not refused.success
    (failure,) = [e for e in refused.all_events if e.is_step_failure]
    assert "is in use by another training run" in failure.event_specific_data.error.message
    assert resumed_from(train(lm_home, max_steps=10)) == 5  # the refused run touched nothing
