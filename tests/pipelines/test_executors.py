"""The Baton executor against real clusters: a dask LocalCluster, Celery workers on a real Redis, a
Celery worker killed mid-step; and the config of every branch, the Kubernetes deployment included."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.reconstruct import ReconstructableJob

from storage import shards
from storage.executors import RELIABLE_DELIVERY, UnknownExecutor, build_executor

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JOBS = HERE / "executor_jobs.py"
DEPLOY = ROOT / "pipelines" / "deploy"
SCORE_ASSETS = ("songs", "notes", "notes_rejects")


def write_midis(folder: Path, count: int = 4) -> Path:
    import muspy

    folder.mkdir(parents=True)
    for n in range(count):
        notes = [
            muspy.Note(time=24 * k, pitch=60 + (n + k) % 12, duration=24, velocity=80)
            for k in range(8)
        ]
        music = muspy.Music(
            resolution=24,
            tempos=[muspy.Tempo(0, 100.0)],
            tracks=[muspy.Track(program=n, notes=notes)],
        )
        music.write_midi(str(folder / f"tune{n}.mid"))
    return folder


@pytest.fixture
def instance(home, monkeypatch) -> Iterator[dg.DagsterInstance]:
    """A persistent instance on the home's DAGSTER_HOME, as a deployment has."""
    monkeypatch.setenv("DAGSTER_HOME", home.dagster)
    with dg.DagsterInstance.get() as instance:
        yield instance


@pytest.fixture
def scores(home, tmp_path, instance) -> str:
    """A registered local folder of a few MIDI files, added as a `datasets` partition."""
    from assets.scores.datasets import register_local

    register_local("mine", write_midis(tmp_path / "midis"), home.local_datasets)
    instance.add_dynamic_partitions("datasets", ["mine"])
    return "mine"


def score_notes_job() -> ReconstructableJob:
    return ReconstructableJob.for_file(str(JOBS), "score_notes")


def squares_job() -> ReconstructableJob:
    return ReconstructableJob.for_module("executor_jobs", "squares_job")


def clean_score_notes(instance: dg.DagsterInstance, partition: str) -> None:
    """The reference run: in this process, on a job built for this test's home (a reconstructable
    job's definition is cached per process, so it may still point at an earlier test's home)."""
    from executor_jobs import score_notes

    assert (
        score_notes()
        .execute_in_process(instance=instance, partition_key=partition)
        .success
    )


def run_job(
    recon: ReconstructableJob,
    instance: dg.DagsterInstance,
    execution: dict,
    run_config: dict | None = None,
    **kw,
):
    with dg.execute_job(
        recon,
        instance,
        run_config={**(run_config or {}), "execution": {"config": execution}},
        **kw,
    ) as result:
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        return result.run_id


def manifests(root: str, assets: tuple[str, ...], partition: str) -> dict[str, tuple]:
    """What identifies a shard set: each shard's sha256 and rows, and the total rows."""
    found = {}
    for asset in assets:
        manifest = shards.read_manifest(root, asset, partition)
        assert manifest is not None, f"{asset}/{partition} was not written"
        found[asset] = (manifest.rows, [(s.sha256, s.rows) for s in manifest.shards])
    return found


def step_pids(instance: dg.DagsterInstance, run_id: str) -> set[int]:
    """The processes that emitted the run's step-start events: where the steps ran."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_START
    ).records
    return {r.event_log_entry.dagster_event.pid for r in records}


# dask ----------------------------------------------------------------------------------------------


def test_a_baton_job_runs_on_an_existing_dask_cluster(
    home, scores, instance, monkeypatch
):
    monkeypatch.syspath_prepend(str(HERE))
    import dask
    from dask.distributed import Client, LocalCluster

    clean_score_notes(instance, scores)  # before any
    clean = manifests(
        home.datasets, SCORE_ASSETS, scores
    )  # cluster thread lives here: ingest forks its parsers
    shutil.rmtree(home.datasets)
    with (
        dask.config.set(
            {"distributed.worker.daemon": False}
        ),  # ingest starts its own parser processes
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        worker_pids = set(client.run(os.getpid).values())
        loading = [  # both workers load the code at once, not one after the other as the steps reach them
            client.submit(exec, "import pipelines.definitions", workers=[w], pure=False)
            for w in client.scheduler_info()["workers"]
        ]
        # Another run of the same job on this cluster holds tasks under dagster-dask's own keys
        # (`<job>.<step>`): dask would hand this run their results in place of running its steps.
        held = [
            client.submit(list, [], key=f"score_notes_job.{step}", pure=False)
            for step in ("score_files", "ingest_scores")
        ]
        run_id = run_job(
            score_notes_job(), instance, {"dask": {"cluster": {"existing": {"address": cluster.scheduler_address}}}},
            tags={"dagster/partition": scores},
        )  # fmt: skip
        client.gather(loading + held)
    assert step_pids(instance, run_id) and step_pids(instance, run_id) <= worker_pids
    assert os.getpid() not in worker_pids
    assert manifests(home.datasets, SCORE_ASSETS, scores) == clean


# celery --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """Kill the process group a worker or server leads (the worker's pool processes with it)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextmanager
def redis_server() -> Iterator[str]:
    import redis

    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop(proc)


@contextmanager
def celery_workers(
    broker: str,
    config_yaml: Path,
    logs: Path,
    preload: str = "executor_jobs",
    while_starting=lambda: None,
    count: int = 2,
) -> Iterator[list[subprocess.Popen]]:
    """`count` workers started as a deployment starts them (one step at a time, in the worker's own
    process, which may start the step's process pool), each in its own process group, with
    executor_jobs importable and the `preload` modules imported at start; runs `while_starting` in
    the meantime (before this process talks to the broker) and yields once every worker answers a ping."""
    from celery import Celery

    bin_dir = Path(sys.executable).parent  # dagster-celery execs `celery` from PATH
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        workers = []
        for n in range(count):
            log = stack.enter_context(open(logs / f"worker{n}.log", "w"))
            cmd = [
                str(bin_dir / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                "-y", str(config_yaml), "-n", f"baton{n}", "-i", preload, "--", "--pool=solo",
            ]  # fmt: skip
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            stack.callback(stop, proc)
            workers.append(proc)
        while_starting()
        app = Celery(broker=broker)
        for _ in range(120):
            if len(app.control.ping(timeout=1.0)) == count:
                break
            dead = [n for n, w in enumerate(workers) if w.poll() is not None]
            assert not dead, (
                (logs / f"worker{dead[0]}.log").read_text()[-3000:] if dead else ""
            )
        else:
            raise AssertionError(f"{count} Celery workers did not come up")
        yield workers


@pytest.fixture
def celery_env(tmp_path, monkeypatch) -> Iterator[str]:
    """A real Redis as broker (db 0) and result backend (db 1), named the way a deployment names them."""
    with redis_server() as url:
        monkeypatch.setenv("BATON_CELERY_BROKER", f"{url}/0")
        monkeypatch.setenv("BATON_CELERY_BACKEND", f"{url}/1")
        yield f"{url}/0"


def test_a_baton_job_on_two_celery_workers_writes_the_shard_set_an_in_process_run_writes(
    home, scores, instance, celery_env, tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(str(HERE))
    clean = {}

    def clean_run():
        clean_score_notes(instance, scores)
        clean.update(manifests(home.datasets, SCORE_ASSETS, scores))
        shutil.rmtree(home.datasets)

    worker_yaml = DEPLOY / "celery" / "worker.yaml"
    with celery_workers(
        celery_env,
        worker_yaml,
        tmp_path / "logs",
        "executor_jobs,pipelines.definitions",
        clean_run,
    ) as workers:
        run_id = run_job(
            score_notes_job(),
            instance,
            {"celery": {}},
            tags={"dagster/partition": scores},
        )
        assert {os.getpgid(pid) for pid in step_pids(instance, run_id)} <= {
            w.pid for w in workers
        }
    assert manifests(home.datasets, SCORE_ASSETS, scores) == clean


def kill_worker_of_first_attempt(
    markers: Path, killed: list[int], done: threading.Event
) -> None:
    """Wait for the first attempt of the slow step to announce its process, then SIGKILL the whole
    worker (main process and pool) it runs in."""
    while not done.is_set():
        found = sorted(markers.glob("*")) if markers.exists() else []
        if found:
            pgid = os.getpgid(int(found[0].name))
            os.killpg(pgid, signal.SIGKILL)
            killed.append(pgid)
            return
        time.sleep(0.05)


def test_killing_a_celery_worker_mid_step_loses_no_data(
    home, instance, celery_env, tmp_path, monkeypatch
):
    """The step is redelivered to the other worker and the shard set ends identical to a clean run's."""
    monkeypatch.syspath_prepend(str(HERE))
    clean_root, celery_root, markers = (
        tmp_path / "clean",
        tmp_path / "celery",
        tmp_path / "markers",
    )
    ops = lambda root, pause: {
        "ops": {
            "slow_shards": {
                "config": {
                    "datasets_root": str(root),
                    "markers": str(markers),
                    "pause_s": pause,
                }
            }
        }
    }
    run_job(squares_job(), instance, {"in_process": {}}, ops(clean_root, 0.0))
    shutil.rmtree(markers)

    # Redis redelivers an unacknowledged task after the visibility timeout: short here, still longer
    # than the step takes on the surviving worker, so only the killed delivery comes back.
    visibility = {
        "visibility_timeout": 10,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    worker_yaml = yaml.safe_load((DEPLOY / "celery" / "worker.yaml").read_text())
    worker_yaml["execution"]["config"]["config_source"]["broker_transport_options"] = (
        visibility
    )
    config_yaml = tmp_path / "worker.yaml"
    config_yaml.write_text(yaml.safe_dump(worker_yaml))

    with celery_workers(celery_env, config_yaml, tmp_path / "logs") as workers:
        killed: list[int] = []
        done = threading.Event()
        watcher = threading.Thread(
            target=kill_worker_of_first_attempt, args=(markers, killed, done)
        )
        watcher.start()
        try:
            run_job(
                squares_job(), instance, {"celery": {"config_source": {"broker_transport_options": visibility}}},
                ops(celery_root, 0.5),
            )  # fmt: skip
        finally:
            done.set()
            watcher.join()
        attempts = [
            int(p.name)
            for p in sorted(markers.glob("*"), key=lambda p: p.stat().st_mtime)
        ]
        assert len(killed) == 1 and len(attempts) == 2
        (survivor,) = [
            w.pid for w in workers if w.pid != killed[0]
        ]  # each worker leads its process group
        assert os.getpgid(attempts[1]) == survivor
    assert manifests(str(celery_root), ("squares",), "all") == manifests(
        str(clean_root), ("squares",), "all"
    )
    assert shards.read_table(str(celery_root), "squares", ["all"]).equals(
        shards.read_table(str(clean_root), "squares", ["all"])
    )


# config --------------------------------------------------------------------------------------------


@pytest.fixture
def baton_job(home) -> dg.JobDefinition:
    from pipelines.definitions import build_defs

    return build_defs(home).resolve_job_def("symbolic_dataset")


BRANCHES = {
    "in_process": {"retries": {"disabled": {}}},
    "multiprocess": {"max_concurrent": 2, "start_method": {"forkserver": {}}},
    "dask": {"cluster": {"existing": {"address": "tcp://127.0.0.1:8786"}}},
    "celery": {
        "broker": "redis://127.0.0.1:6379/0",
        "config_source": {"visibility_timeout": 7200},
    },
    "k8s": {"job_namespace": "baton", "max_concurrent": 4},
}
BAD_KEYS = {name: {**config, "no_such_key": 1} for name, config in BRANCHES.items()}


@pytest.mark.parametrize("name", BRANCHES)
def test_every_branch_takes_its_executor_config(baton_job, name):
    resolved = dg.validate_run_config(
        baton_job, {"execution": {"config": {name: BRANCHES[name]}}}
    )
    assert (
        resolved["execution"]["baton"][name].items()
        >= {k: v for k, v in BRANCHES[name].items() if k != "config_source"}.items()
    )


@pytest.mark.parametrize("name", BRANCHES)
def test_a_wrong_key_in_a_branch_is_a_config_error_that_names_it(baton_job, name):
    with pytest.raises(dg.DagsterInvalidConfigError, match="no_such_key"):
        dg.validate_run_config(
            baton_job, {"execution": {"config": {name: BAD_KEYS[name]}}}
        )


def test_two_branches_at_once_are_a_config_error(baton_job):
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(
            baton_job, {"execution": {"config": {"in_process": {}, "multiprocess": {}}}}
        )


def test_baton_executor_picks_the_deployment_branch_from_the_environment(baton_job):
    from storage.executors import default_branch

    assert default_branch({}) == {"multiprocess": {}}
    assert default_branch({"BATON_EXECUTOR": "k8s"}) == {"k8s": {}}
    assert default_branch({"BATON_EXECUTOR": "dask"}) == {
        "dask": {"cluster": {"local": {}}}
    }
    address = {"BATON_EXECUTOR": "dask", "BATON_DASK_SCHEDULER": "tcp://10.0.0.5:8786"}
    assert default_branch(address) == {
        "dask": {"cluster": {"existing": {"address": "tcp://10.0.0.5:8786"}}}
    }
    resolved = dg.validate_run_config(baton_job, {})
    assert list(resolved["execution"]["baton"]) == ["multiprocess"]
    assert build_executor(
        address
    ).config_schema.as_field().default_value == default_branch(address)


def test_an_unknown_executor_name_is_one_clear_line():
    with pytest.raises(UnknownExecutor) as raised:
        build_executor({"BATON_EXECUTOR": "spark"})
    message = str(raised.value)
    assert "\n" not in message and "'spark'" in message
    assert all(name in message for name in BRANCHES)


def test_celery_runs_get_reliable_delivery_and_the_deployment_broker():
    from storage.executors import celery_config

    env = {
        "BATON_CELERY_BROKER": "redis://broker:6379/0",
        "BATON_CELERY_BACKEND": "redis://broker:6379/1",
    }
    filled = celery_config({"backend": "rpc://", "config_source": None}, env)
    assert (filled["broker"], filled["backend"]) == (
        "redis://broker:6379/0",
        "redis://broker:6379/1",
    )
    assert filled["config_source"] == RELIABLE_DELIVERY
    assert (
        celery_config({"backend": "rpc://"}, {})["broker"] == "redis://127.0.0.1:6379/0"
    )
    chosen = celery_config(
        {"broker": "redis://other/0", "config_source": {"task_acks_late": False}}, env
    )
    assert (
        chosen["broker"] == "redis://other/0"
        and chosen["config_source"]["task_acks_late"] is False
    )


def test_the_worker_config_matches_what_runs_ask_of_celery(monkeypatch):
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("BATON_CELERY_BROKER", "redis://broker:6379/0")
    monkeypatch.setenv("BATON_CELERY_BACKEND", "redis://broker:6379/1")
    config = get_validated_config(str(DEPLOY / "celery" / "worker.yaml"))
    assert (config["broker"], config["backend"]) == (
        "redis://broker:6379/0",
        "redis://broker:6379/1",
    )
    assert config["config_source"] == RELIABLE_DELIVERY


def test_the_kubernetes_run_config_is_valid_for_a_baton_job(baton_job):
    run_config = yaml.safe_load((DEPLOY / "k8s" / "run_config.yaml").read_text())
    k8s = dg.validate_run_config(baton_job, run_config)["execution"]["baton"]["k8s"]
    assert k8s["job_namespace"] == "baton" and k8s["max_concurrent"] == 4
    assert set(k8s["per_step_k8s_config"]) <= {
        node.name for node in baton_job.graph.node_dict.values()
    }
    run_config["execution"]["config"]["k8s"]["max_concurrency"] = 4  # misspelt
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_concurrency"):
        dg.validate_run_config(baton_job, run_config)


def snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def run_launcher_config(values: dict) -> dict:
    """The K8sRunLauncher config the chart's run-launcher template writes into dagster.yaml: the
    k8sRunLauncher values with snake_case keys, Secrets and ConfigMaps by name, plus the fields the
    chart fills in itself."""
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    config = {snake(k): v for k, v in launcher["config"]["k8sRunLauncher"].items()}
    for key in ("env_secrets", "env_config_maps"):
        if key in config:
            config[key] = [ref["name"] for ref in config[key]]
    return config | {
        "instance_config_map": "baton-dagster-instance",
        "dagster_home": "/opt/dagster/dagster_home",
        "postgres_password_secret": "dagster-postgresql-secret",
        "service_account_name": "baton-dagster",
    }


def test_the_helm_values_configure_a_valid_k8s_run_launcher():
    from dagster._config import validate_config
    from dagster_k8s import K8sRunLauncher

    values = yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())
    config = run_launcher_config(values)
    result = validate_config(K8sRunLauncher.config_type(), config)
    assert result.success, [e.message for e in result.errors]
    assert "BATON_EXECUTOR=k8s" in config["env_vars"]
    assert any(v.startswith("BATON_DATASETS_URI=s3://") for v in config["env_vars"])
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert {"name": "BATON_EXECUTOR", "value": "k8s"} in deployment["env"]
    assert deployment["dagsterApiGrpcArgs"] == [
        "--module-name",
        "pipelines.definitions",
    ]

    config["job_namspace"] = "baton"  # misspelt
    result = validate_config(K8sRunLauncher.config_type(), config)
    assert not result.success and "job_namspace" in " ".join(
        e.message for e in result.errors
    )
