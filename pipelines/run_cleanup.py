"""Runs that fail end their MLflow runs: a run whose worker died (failed by run monitoring) or was
marked failed by hand never reached the code that would have ended them."""

import dagster as dg

from storage.tracking import MlflowResource


@dg.run_failure_sensor(
    name="end_tracking_runs_of_failed_runs", minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)  # fmt: skip
def end_tracking_runs(context: dg.RunFailureSensorContext, tracking: MlflowResource) -> None:
    """End the failed run's MLflow runs that are still RUNNING as KILLED."""
    ended = tracking.end_runs_of(context.dagster_run.run_id)
    if ended:
        context.log.info(f"ended {len(ended)} MLflow runs of failed run {context.dagster_run.run_id}: {ended}")
