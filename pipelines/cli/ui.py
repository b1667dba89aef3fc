"""`baton ui`: the Dagster and MLflow UIs over the same BATON_HOME, from any directory.

Each server runs in a session of its own, so that stopping `baton ui` (Ctrl-C, SIGTERM) stops the server
and every process it started by their process group, and the banner names both URLs only once both answer.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field

from pipelines.cli.interrupts import ignore_stop_signals
from pipelines.cli.launch import UsageError
from storage.home import REPO_ROOT, BatonHome

STOP_GRACE_S = 20.0  # from SIGTERM to SIGKILL
TAIL_LINES = 3  # of a failed server's stderr, in its error line


def mlflow_workers() -> int:
    """uvicorn workers for the MLflow UI: one person browsing needs one or two, each holds ~250 MB."""
    return max(1, min(2, (os.cpu_count() or 1) // 2))


@dataclass
class Server:
    """One UI server: started in a new session, its stderr relayed to ours with the last lines kept."""

    name: str
    url: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    relay: threading.Thread | None = None
    tail: deque = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            self.argv, cwd=REPO_ROOT, env=env, start_new_session=True,
            stderr=subprocess.PIPE, text=True, errors="replace",
        )
        self.relay = threading.Thread(target=self._relay, daemon=True)
        self.relay.start()

    def _relay(self) -> None:
        for line in self.proc.stderr:
            sys.stderr.write(line)
            self.tail.append(line.rstrip())

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def failure(self, what: str) -> str:
        last = " | ".join(line for line in self.tail if line) or "nothing on stderr"
        return f"the {self.name} UI {what}; its last stderr lines: {last}"

    @property
    def group(self) -> int:
        return self.proc.pid  # a new session's leader: the group id is its pid


def stop_all(started: list[Server]) -> None:
    """SIGTERM to every server's process group, SIGKILL to what is left of them after the grace period."""
    groups = [server.group for server in started if server.proc is not None]
    for group in groups:
        signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while any(group_alive(group) for group in groups) and time.monotonic() < deadline:
        for server in started:
            if server.proc is not None:
                server.proc.poll()  # reap the leader, which would otherwise keep its group alive
        time.sleep(0.1)
    for group in groups:
        signal_group(group, signal.SIGKILL)
    for server in started:
        if server.proc is not None:
            server.proc.wait()
            server.relay.join(timeout=5)  # its last lines come before ours


def signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass


def group_alive(group: int) -> bool:
    """Whether a process of the group is left (an exited, unreaped one counts until its parent reaps it)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def servers(args: argparse.Namespace, home: BatonHome) -> tuple[list[Server], str]:
    """The servers to start, and the MLflow UI's URL (a tracking server given by BATON_MLFLOW_URI is its own UI)."""
    from storage.tracking import default_tracking_uri, is_server

    workspace = REPO_ROOT / "workspace.yaml"
    if not workspace.is_file():
        raise UsageError(f"no workspace.yaml in {REPO_ROOT}: `baton ui` needs a checkout installed with pip install -e")
    bin_dir = os.path.dirname(sys.executable)
    dagster = Server(
        "Dagster", f"http://127.0.0.1:{args.dagster_port}",
        [os.path.join(bin_dir, "dagster"), "dev", "-w", str(workspace), "-h", "127.0.0.1",
         "-p", str(args.dagster_port)],
    )  # fmt: skip
    uri = default_tracking_uri(home)
    if is_server(uri):
        return [dagster], uri
    mlflow = Server(
        "MLflow", f"http://127.0.0.1:{args.mlflow_port}",
        [os.path.join(bin_dir, "mlflow"), "ui", "--backend-store-uri", uri, "--default-artifact-root",
         f"{home.mlflow}/artifacts", "--host", "127.0.0.1", "--port", str(args.mlflow_port),
         "--workers", str(args.mlflow_workers)],
    )  # fmt: skip
    return [dagster, mlflow], mlflow.url


def cmd_ui(args: argparse.Namespace) -> int:
    home = BatonHome.from_env().ensure()
    started, mlflow_url = servers(args, home)
    # MLflow's job runner (GenAI evaluation jobs, trace roll-ups) starts seven more processes of ~250 MB
    # each; training runs and the registry need none of them.
    env = {**os.environ, "DAGSTER_HOME": home.dagster, "BATON_HOME": home.root}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    try:
        for server in started:
            server.start(env)
        failure = wait_until_answering(started, time.monotonic() + args.timeout)
        if failure is None:
            print(f"Dagster: {started[0].url}   MLflow: {training_runs(home, mlflow_url)}   (Ctrl-C stops both)", flush=True)
            failure = wait_until_one_exits(started)
    finally:
        ignore_stop_signals()
        stop_all(started)
    print(f"error: {failure}", file=sys.stderr)
    return 1


def training_runs(home: BatonHome, mlflow_url: str) -> str:
    """The `baton` experiment's page in MLflow's model-training view: its bare URL opens on GenAI traces."""
    from storage.tracking import TRAINING_VIEW, MlflowResource, default_artifact_root, default_tracking_uri, ensure_experiment

    name = MlflowResource.model_fields["experiment"].default
    experiment = ensure_experiment(default_tracking_uri(home), name, default_artifact_root(home))
    return f"{mlflow_url.rstrip('/')}/#/experiments/{experiment}{TRAINING_VIEW}"


def wait_until_answering(started: list[Server], deadline: float) -> str | None:
    """None once every server answers HTTP 200; else why not: one exited, or the deadline passed."""
    waiting = list(started)
    while waiting:
        for server in started:
            if server.proc.poll() is not None:
                return server.failure(f"exited with status {server.proc.returncode} before it answered on {server.url}")
        waiting = [server for server in waiting if not server.answers()]
        if waiting and time.monotonic() > deadline:
            return waiting[0].failure(f"did not answer on {waiting[0].url} in time (--timeout)")
        time.sleep(0.5)
    return None


def wait_until_one_exits(started: list[Server]) -> str:
    while True:
        for server in started:
            if server.proc.poll() is not None:
                return server.failure(f"exited with status {server.proc.returncode}")
        time.sleep(0.5)


def register(sub: argparse._SubParsersAction) -> None:
    ui = sub.add_parser(
        "ui", help="the Dagster and MLflow UIs on 127.0.0.1 over the same BATON_HOME",
        description="Starts `dagster dev` on the project's workspace (the code location, its runs, assets, sensors) "
        "and the MLflow UI, from any directory; prints both URLs once both answer. Ctrl-C or SIGTERM stops both "
        "servers and every process they started; if one server exits or does not answer in time, the other is "
        "stopped and the command exits 1 naming it.",
    )  # fmt: skip
    ui.add_argument("--dagster-port", type=int, default=3000, help="port of the Dagster UI")
    ui.add_argument("--mlflow-port", type=int, default=5000, help="port of the MLflow UI")
    ui.add_argument(
        "--mlflow-workers", type=int, default=mlflow_workers(),
        help="MLflow UI worker processes: max(1, min(2, cores // 2))",
    )  # fmt: skip
    ui.add_argument("--timeout", type=float, default=180.0, help="seconds both servers have to answer")
    ui.set_defaults(func=cmd_ui)
