"""Stop means stop: SIGINT, SIGTERM or SIGHUP to `baton` cancels its Dagster runs and kills its MLflow runs.

Dagster handles these signals inside a run itself, which is why a command that runs jobs cannot simply
catch them: while a run executes, Dagster maps SIGTERM to its own SIGINT handler and raises the
interruption inside the running step; in-process execution (every experiment's child runs) turns the
interruption of a step with a retry policy into an immediate retry of that step; an interrupted child run
returns as failed, so the experiment's next stage starts; and a run nobody asked to cancel ends as failed.

So the `baton` command runs a job-running command in a worker process of its own process group and waits
for it. On a stop signal it kills that group (the worker and every process the worker started), marks the
Dagster runs the worker left unfinished canceled and ends their MLflow runs as KILLED. Every other command
runs in the `baton` process, where the three signals raise `Stopped`, a KeyboardInterrupt.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from storage.home import BatonHome

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A stop signal arrived: a KeyboardInterrupt, so no `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def status(self) -> int:
        """The shell's exit status of a process ended by this signal."""
        return 128 + self.signum


def _raise_stopped(signum: int, _frame) -> None:
    raise Stopped(signum)


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within: each stop signal raises Stopped in the main thread (SIGTERM and SIGHUP behave like SIGINT);
    the previous handlers come back after. Outside the main thread, where handlers cannot be set, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ignore_stop_signals() -> None:
    """While a stop is being cleaned up: a second signal must not cut the clean-up short. The enclosing
    `stop_signals_raise` puts the handlers back."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextmanager
def held_stop_signals() -> Iterator[None]:
    """Within: stop signals wait, so that what forks a worker also records it; they arrive after. A process
    started within inherits the blocked signals (the forked worker unblocks them itself)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def run_stoppable(command: Callable[[], int]) -> int:
    """Run `command` here; a stop signal ends it with one line on stderr and the signal's exit status."""
    try:
        with stop_signals_raise():
            return command()
    except KeyboardInterrupt as exc:
        stop = exc if isinstance(exc, Stopped) else Stopped(signal.SIGINT)
        print(f"interrupted by {stop}", file=sys.stderr)
        return stop.status


def run_in_worker(command: Callable[[], int], home: BatonHome) -> int:
    """Run `command` in a forked worker process of its own process group and wait for it: its exit
    status, or on a stop signal, the signal's, after the worker's group is killed and its runs cancelled.

    The worker's group does not receive the terminal's Ctrl-C (that is the `baton` process's to handle).
    Fork only where no other thread runs: the `baton` command forks before it imports anything heavy."""
    sys.stdout.flush()
    sys.stderr.flush()
    with stop_signals_raise():
        try:
            with held_stop_signals():  # until the worker is in its own group
                pid = os.fork()
                if pid == 0:
                    _work(command)
                with suppress(PermissionError, ProcessLookupError):  # the worker did it first, or has exited
                    os.setpgid(pid, pid)
            status = os.waitpid(pid, 0)[1]
        except Stopped as stop:
            ignore_stop_signals()
            with suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with suppress(ChildProcessError):  # the signal came right after the worker was reaped
                os.waitpid(pid, 0)
            print(f"interrupted by {stop}: ", end="", file=sys.stderr, flush=True)  # at once; the rest when done
            try:
                print(cancel_runs_of(home, pid, str(stop)), file=sys.stderr)
            except Exception as exc:  # the next command that opens the instance fails them instead (fail_dead_runs)
                why = f"{type(exc).__name__}: {exc}"
                print(f"its runs were left for the next command to mark failed: {why}", file=sys.stderr)
            return stop.status
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _work(command: Callable[[], int]) -> None:
    """The worker: its own process group, the default signal handlers, `command`'s status as its exit status."""
    code = 1
    try:
        with suppress(PermissionError):  # the parent did it first
            os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in STOP_SIGNALS[1:]:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        code = command()
    except KeyboardInterrupt:  # a signal sent to the worker itself
        code = 128 + signal.SIGINT
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def cancel_runs_of(home: BatonHome, pid: int, why: str) -> str:
    """Mark the Dagster runs that process `pid` left executing canceled and end their RUNNING MLflow runs
    as KILLED; what was done, in words."""
    if not os.path.exists(os.path.join(home.dagster, "dagster.yaml")):
        return "no run was executing"  # no command has opened this home's instance
    import dagster as dg

    from pipelines.cli.launch import home_instance
    from storage.run_worker import worker_pid

    with home_instance(home) as instance:
        runs = [
            run for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            if worker_pid(instance, run.run_id) == pid
        ]  # fmt: skip
        if not runs:
            return "no run was executing"
        for run in runs:
            instance.report_run_canceled(run, f"the `baton` command was stopped by {why}")
    from storage.tracking import MlflowResource, default_tracking_uri

    tracking = MlflowResource(tracking_uri=default_tracking_uri(home))
    killed = [mlflow_run for run in runs for mlflow_run in tracking.end_runs_of(run.run_id)]
    canceled = ", ".join(f"{run.run_id} ({run.job_name})" for run in runs)
    ended = f"; ended {len(killed)} MLflow run{'s' if len(killed) > 1 else ''} as KILLED" if killed else ""
    return f"canceled run{'s' if len(runs) > 1 else ''} {canceled}{ended}"
