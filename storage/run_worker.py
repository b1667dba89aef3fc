"""Whether a run's worker process is still alive, so Dagster's run monitoring can fail dead runs.

Baton runs jobs on this machine: `baton experiment` executes them in its own process, the UI
launches them through the default launcher. Dagster's run monitoring only acts on a STARTED run
when the launcher can say whether the run's worker lives, which the default launcher cannot, so a
run killed with kill -9 stayed STARTED and could not be re-executed. Every executor records its
process id in the run's first engine event; the launcher here checks that process.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus  # the launcher interface's types


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The process id the run's executor recorded when it started; None before it has."""
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records:
        event = record.event_log_entry.dagster_event
        pid = event.engine_event_data.metadata.get("pid") if event and event.engine_event_data else None
        if pid is not None:
            return int(pid.value)
    return None


def process_alive(pid: int) -> bool:
    """Signal 0 checks that the process exists without touching it (one owned by another user exists too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_worker(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The process id of the run's worker when that process is gone; None while it lives or before
    it has recorded itself (the executor is still starting)."""
    pid = worker_pid(instance, run_id)
    return pid if pid is not None and not process_alive(pid) else None


class LocalRunLauncher(dg.DefaultRunLauncher):
    """The default launcher, plus a worker health check for runs whose workers run on this machine."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        pid = dead_worker(self._instance, run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run's worker process {pid} is gone")


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark as failed every STARTED run whose worker is gone, as run monitoring does in the daemon,
    so commands that run without one (`baton experiment`, `baton ingest`) can re-execute at once."""
    failed = []
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        pid = dead_worker(instance, run.run_id)
        if pid is not None:
            instance.report_run_failed(run, f"the run's worker process {pid} is gone")
            failed.append(run.run_id)
    return failed
