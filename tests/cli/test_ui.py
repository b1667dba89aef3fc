"""`baton ui` through the real console script, started outside the checkout: its banner only once both UIs
answer, nothing of it left after SIGTERM, and a server that cannot start named in one line."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
from mlflow import MlflowClient

from pipelines.cli.launch import ui_origin
from storage.tracking import default_tracking_uri

BATON = str(Path(sys.executable).with_name("baton"))
REPO = str(Path(__file__).resolve().parents[2])
DEADLINE_S = 300  # for both servers to start on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    """No server listens on it: a server could bind it again (its closed connections' TIME_WAIT does not count,
    as servers bind with SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_ui(home, cwd: Path, dagster: int, mlflow: int) -> tuple[subprocess.Popen, Path, Path]:
    env = {**os.environ, "BATON_HOME": home.root, "PYTHONPATH": REPO}
    env.pop("BATON_MLFLOW_URI", None)
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    with open(out, "w") as o, open(err, "w") as e:
        argv = [BATON, "ui", "--dagster-port", str(dagster), "--mlflow-port", str(mlflow), "--timeout", str(DEADLINE_S)]
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=o, stderr=e), out, err


def status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


def repositories(url: str) -> list[tuple[str, str, str]]:
    """(code location, repository, job) of every job the Dagster UI has loaded."""
    query = "{workspaceOrError {... on Workspace {locationEntries {name locationOrLoadError {... on RepositoryLocation"
    query += " {repositories {name pipelines {name}}}}}}}}"
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(f"{url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
    return [
        (entry["name"], repo["name"], job["name"])
        for entry in entries
        for repo in (entry["locationOrLoadError"] or {}).get("repositories", [])
        for job in repo["pipelines"]
    ]


def test_banner_once_both_answer_and_sigterm_stops_every_process(home, tmp_path, assert_gone):
    dagster, mlflow = free_port(), free_port()
    proc, out, err = start_ui(home, tmp_path, dagster, mlflow)  # tmp_path: not the checkout
    urls = (f"http://127.0.0.1:{dagster}", f"http://127.0.0.1:{mlflow}")
    deadline = time.monotonic() + DEADLINE_S + 30
    while (banner := [line for line in out.read_text().splitlines() if line.startswith("Dagster: ")]) == []:
        assert proc.poll() is None, f"baton ui exited ({proc.returncode}):\n{err.read_text()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    experiment = MlflowClient(default_tracking_uri(home)).get_experiment_by_name("baton").experiment_id
    training_runs = f"{urls[1]}/#/experiments/{experiment}?workflowType=machine_learning"  # not MLflow's GenAI view
    assert banner == [f"Dagster: {urls[0]}   MLflow: {training_runs}   (Ctrl-C stops both)"]
    assert [status(url) for url in urls] == [200, 200]
    started = psutil.Process(proc.pid).children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in started]
    assert any("dagster dev" in c for c in commands) and any("dagster_webserver" in c for c in commands)
    assert any("mlflow ui" in c for c in commands) and any("uvicorn" in c for c in commands)
    assert not any("huey" in c or "_job_runner" in c for c in commands)  # MLflow's job runner is off
    origin = ui_origin("muspy_experiment")  # what CLI runs carry, for the Overview timeline to show them
    while not (jobs := repositories(urls[0])):  # the code location loads after the UI answers
        assert time.monotonic() < deadline
        time.sleep(1)
    assert (origin.location_name, origin.repository_origin.repository_name, origin.job_name) in jobs

    proc.send_signal(15)
    assert proc.wait(timeout=120) == 128 + 15
    assert_gone(started)
    assert port_free(dagster) and port_free(mlflow)
    assert err.read_text().rstrip("\n").splitlines()[-1] == "interrupted by SIGTERM"


def test_a_server_that_cannot_start_is_named_and_the_other_stopped(home, tmp_path, assert_gone):
    dagster, mlflow = free_port(), free_port()
    with socket.socket() as taken:  # something else already listens on the MLflow port
        taken.bind(("127.0.0.1", mlflow))
        taken.listen()
        proc, out, err = start_ui(home, tmp_path, dagster, mlflow)
        deadline, started = time.monotonic() + DEADLINE_S, []
        while proc.poll() is None:
            started = psutil.Process(proc.pid).children(recursive=True) or started
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert proc.returncode == 1
    assert not any(line.startswith("Dagster: ") for line in out.read_text().splitlines())
    last = err.read_text().rstrip("\n").splitlines()[-1]
    assert last.startswith("error: the MLflow UI exited with status") and "its last stderr lines: " in last
    assert_gone(started)
    assert port_free(dagster)
